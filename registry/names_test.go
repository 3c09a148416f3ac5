package registry

import (
	"strings"
	"testing"
)

func TestNormalizeName(t *testing.T) {
	dig := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		in, want, err string
	}{
		{"busybox", "docker.io/library/busybox:latest", ""},
		{"busybox:1", "docker.io/library/busybox:1", ""},
		{"busybox:1.36.1-musl", "docker.io/library/busybox:1.36.1-musl", ""},
		{"library/busybox", "docker.io/library/busybox:latest", ""},
		{"docker.io/busybox", "docker.io/library/busybox:latest", ""},
		{"index.docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"me/api", "docker.io/me/api:latest", ""},
		{"me/api:v2", "docker.io/me/api:v2", ""},
		{"me/sub/api", "docker.io/me/sub/api:latest", ""},
		{"localhost/x", "localhost/x:latest", ""},
		{"localhost:5000/x:y", "localhost:5000/x:y", ""},
		{"127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest", ""},
		{"ghcr.io/a/b", "ghcr.io/a/b:latest", ""},
		{"Registry.Example.com/a", "Registry.Example.com/a:latest", ""},
		{"a_b/c__d/e-f--g/h.i", "docker.io/a_b/c__d/e-f--g/h.i:latest", ""},
		{"busybox@" + dig, "docker.io/library/busybox@" + dig, ""},
		{"busybox:1@" + dig, "docker.io/library/busybox:1@" + dig, ""},
		{"ghcr.io/a/b@" + dig, "ghcr.io/a/b@" + dig, ""},
		{"UPPER", "", "must be lowercase"},
		{"me/Api", "", "must be lowercase"},
		{"", "", "empty"},
		{"busybox:", "", "bad tag"},
		{"busybox:.x", "", "bad tag"},
		{"busybox:" + strings.Repeat("t", 129), "", "bad tag"},
		{"a./b", "", "bad registry host"},
		{"a/b.", "", "bad repository name"},
		{"a/_b", "", "bad repository name"},
		{"-a", "", "bad repository name"},
		{"a./b", "", "bad registry host"},
		{"a/b.", "", "bad repository name"},
		{"a/_b", "", "bad repository name"},
		{"a b", "", "bad repository name"},
		{"busybox@sha256:abc", "", "bad digest"},
		{"busybox@md5:" + strings.Repeat("a", 32), "", "bad digest"},
		{"https://ghcr.io/a", "", "URL scheme"},
		{strings.Repeat("ab", 32), "", "image ID"},
		{"host:port/x", "", "bad registry port"},
		{"-bad.io/x", "", "bad registry host"},
		{"ghcr.io/", "", "empty repository"},
		{strings.Repeat("a", 250) + "/b", "", "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeName(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("NormalizeName(%q) = %q, %v; want error with %q", tc.in, got, err, tc.err)
				}
				if !strings.Contains(err.Error(), `"`+tc.in+`"`) {
					t.Fatalf("error %q does not name the reference", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			// Normalizing is idempotent.
			if again, err := NormalizeName(got); err != nil || again != got {
				t.Fatalf("NormalizeName(%q) = %q, %v", got, again, err)
			}
		})
	}
}

func TestFamiliarAndSplitName(t *testing.T) {
	tests := []struct{ full, familiar, repo, tag string }{
		{"docker.io/library/busybox:latest", "busybox:latest", "docker.io/library/busybox", "latest"},
		{"docker.io/me/api:1", "me/api:1", "docker.io/me/api", "1"},
		{"localhost:5000/x:y", "localhost:5000/x:y", "localhost:5000/x", "y"},
		{"ghcr.io/a/b@sha256:00", "ghcr.io/a/b@sha256:00", "ghcr.io/a/b", "sha256:00"},
		{"docker.io/library/busybox:1@sha256:00", "busybox:1@sha256:00", "docker.io/library/busybox", "sha256:00"},
	}
	for _, tc := range tests {
		if got := FamiliarName(tc.full); got != tc.familiar {
			t.Errorf("FamiliarName(%q) = %q, want %q", tc.full, got, tc.familiar)
		}
		if repo, tag := SplitName(tc.full); repo != tc.repo || tag != tc.tag {
			t.Errorf("SplitName(%q) = %q %q", tc.full, repo, tag)
		}
	}
}
