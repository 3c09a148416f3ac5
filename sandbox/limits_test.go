package sandbox

import "testing"

func TestParseMemory(t *testing.T) {
	good := map[string]int64{
		"64m": 64 << 20, "64M": 64 << 20, "64mb": 64 << 20, "64MiB": 64 << 20, "1g": 1 << 30, "1G": 1 << 30,
		"512k": 512 << 10, "512kb": 512 << 10, "100": 100, "100b": 100, "100B": 100, "1.5g": 3 << 29,
		"2t": 2 << 40, "64 m": 64 << 20,
	}
	for in, want := range good {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "-1m", "64x", "64mm", "1e9", "abc", "64 mb b"} {
		if got, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormatMemory(t *testing.T) {
	for in, want := range map[int64]string{64 << 20: "64MB", 1 << 30: "1GB", 512 << 10: "512KB", 100: "100B", 3 << 29: "1536MB"} {
		if got := FormatMemory(in); got != want {
			t.Errorf("FormatMemory(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCPUs(t *testing.T) {
	for in, want := range map[string]int64{"0.5": 5e8, "1": 1e9, "1.25": 1.25e9, "0": 0, "0.01": 1e7} {
		if got, err := ParseCPUs(in, 2); err != nil || got != want {
			t.Errorf("ParseCPUs(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "3", "0.001"} {
		if got, err := ParseCPUs(in, 2); err == nil {
			t.Errorf("ParseCPUs(%q) = %d, want an error", in, got)
		}
	}
	if q := (Limits{NanoCPUs: 5e8}).cpuQuota(); q != 50000 {
		t.Errorf("quota for 0.5 CPU = %d, want 50000", q)
	}
	if q := (Limits{NanoCPUs: 1e7}).cpuQuota(); q != 1000 {
		t.Errorf("quota for 0.01 CPU = %d, want 1000", q)
	}
}
