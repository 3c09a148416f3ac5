package cache

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestKeyDependsOnParentAndInputs(t *testing.T) {
	type in struct {
		Cmd string
		Env []string
	}
	base, err := Key("parent", in{"RUN make", []string{"A=1"}})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Key("parent", in{"RUN make", []string{"A=1"}})
	if base != again || len(base) != 64 {
		t.Fatalf("keys must be stable sha256 hex: %q %q", base, again)
	}
	for name, k := range map[string]func() (string, error){
		"parent": func() (string, error) { return Key("other", in{"RUN make", []string{"A=1"}}) },
		"cmd":    func() (string, error) { return Key("parent", in{"RUN make all", []string{"A=1"}}) },
		"env":    func() (string, error) { return Key("parent", in{"RUN make", []string{"A=2"}}) },
		// The separator keeps "ab"+"c" apart from "a"+"bc".
		"boundary": func() (string, error) { return Key("parentR", in{"UN make", []string{"A=1"}}) },
	} {
		got, err := k()
		if err != nil {
			t.Fatal(err)
		}
		if got == base {
			t.Errorf("changing the %s must change the key", name)
		}
	}
	if _, err := Key("p", func() {}); err == nil {
		t.Error("unencodable inputs must be an error")
	}
}

func TestIndexPutGetRemove(t *testing.T) {
	dir := t.TempDir()
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Get("k1"); ok {
		t.Fatal("empty index has k1")
	}
	want := Entry{DiffID: "sha256:abc", Size: 42, Created: time.Unix(1700000000, 0).UTC(), Duration: time.Second}
	if err := ix.Put("k1", want); err != nil {
		t.Fatal(err)
	}
	// A second Index on the same dir (another process) sees it.
	ix2, _ := Open(dir)
	got, ok := ix2.Get("k1")
	if !ok || got != want {
		t.Fatalf("Get = %+v %v, want %+v", got, ok, want)
	}
	if err := ix.Put("k2", Entry{Empty: true}); err != nil {
		t.Fatal(err)
	}
	if e, ok := ix.Get("k2"); !ok || !e.Empty {
		t.Error("empty entries are kept")
	}
	// No temp files stay behind, and a torn file (as after a crash of another writer) reads as a miss.
	entries, _ := os.ReadDir(filepath.Join(dir, "keys"))
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".json" {
			t.Errorf("leftover %s", e.Name())
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "torn.json"), []byte(`{"diff_id":"sha`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Get("torn"); ok {
		t.Error("a torn entry must read as a miss")
	}
	if err := ix.Remove("k1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Get("k1"); ok {
		t.Error("removed entry still there")
	}
	if err := ix.Remove("never"); err != nil {
		t.Errorf("removing a missing entry: %v", err)
	}
}
