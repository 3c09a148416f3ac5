package registry

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestHelperProcess is not a test: the tests below re-exec the test binary into it to get a second
// process working on the same store.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("REGISTRY_HELPER")
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	root, prefix := os.Getenv("REGISTRY_ROOT"), os.Getenv("REGISTRY_PREFIX")
	count, _ := strconv.Atoi(os.Getenv("REGISTRY_COUNT"))
	s, err := Open(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; mode == "loop" || i < count; i++ {
		if err := commitAndChurn(s, prefix, i); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
	os.Exit(0)
}

// commitAndChurn does what a build does (write a shared and an own layer, commit under a name),
// then commits and removes a throw-away image, so garbage collection runs between others' steps.
func commitAndChurn(s *Store, prefix string, i int) error {
	var ls []v1.Descriptor
	for _, files := range []map[string]string{{"shared": "base"}, {"own": prefix + strconv.Itoa(i)}} {
		d, n, err := s.WriteBlob(bytesReader(layerTar(nopTB{}, files)))
		if err != nil {
			return err
		}
		ls = append(ls, v1.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Size: n, Digest: d})
	}
	name := fmt.Sprintf("%s-%d", prefix, i)
	if _, err := s.CommitImage(testConfig(name, ls...), ls, []string{"docker.io/library/" + name + ":latest"}); err != nil {
		return fmt.Errorf("commit %s: %w", name, err)
	}
	tmp := "docker.io/library/" + name + ":tmp"
	if _, err := s.CommitImage(testConfig(name+"-tmp", ls[1]), ls[1:], []string{tmp}); err != nil {
		return fmt.Errorf("commit %s: %w", tmp, err)
	}
	if _, err := s.Remove(tmp); err != nil {
		return fmt.Errorf("remove %s: %w", tmp, err)
	}
	return nil
}

// nopTB lets layerTar run outside a test (in the helper process); it never fails there.
type nopTB struct{ testing.TB }

func (nopTB) Helper()                      {}
func (nopTB) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (nopTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

func helperCmd(t *testing.T, mode, root, prefix string, count int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "REGISTRY_HELPER="+mode, "REGISTRY_ROOT="+root,
		"REGISTRY_PREFIX="+prefix, "REGISTRY_COUNT="+strconv.Itoa(count))
	cmd.Stderr = os.Stderr
	return cmd
}

func TestConcurrentCommitsNeverLoseEntries(t *testing.T) {
	root := t.TempDir()
	const perWorker = 12
	var want []string
	var procs []*exec.Cmd
	for p := 0; p < 2; p++ {
		prefix := fmt.Sprintf("proc%d", p)
		cmd := helperCmd(t, "commit", root, prefix, perWorker)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		for i := 0; i < perWorker; i++ {
			want = append(want, fmt.Sprintf("docker.io/library/%s-%d:latest", prefix, i))
		}
	}
	shared := openStore(t, root)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		prefix := fmt.Sprintf("goroutine%d", g)
		for i := 0; i < perWorker; i++ {
			want = append(want, fmt.Sprintf("docker.io/library/%s-%d:latest", prefix, i))
		}
		s := shared
		if g%2 == 1 {
			s = openStore(t, root) // its own Store value: its own lock fd and lease file
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				if err := commitAndChurn(s, prefix, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper process: %v", err)
		}
	}
	got := allNames(t, shared)
	have := map[string]bool{}
	for _, n := range got {
		have[n] = true
	}
	for _, n := range want {
		if !have[n] {
			t.Errorf("lost %s", n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d names, want %d", len(got), len(want))
	}
	// Every image is complete.
	imgs, err := shared.Images()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		for _, l := range img.Manifest.Layers {
			if !shared.HasBlob(l.Digest) {
				t.Errorf("%v: layer %s missing", img.Names, l.Digest)
			}
		}
	}
}

// kill -9 at any moment leaves a store that the next command uses without repair.
func TestKilledWriterLeavesUsableStore(t *testing.T) {
	root := t.TempDir()
	for round := 0; round < 4; round++ {
		cmd := helperCmd(t, "loop", root, fmt.Sprintf("round%d", round), 0)
		cmd.Stderr = nil
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(60+37*round) * time.Millisecond)
		cmd.Process.Kill() // SIGKILL, our own child
		cmd.Wait()

		s := openStore(t, root)
		imgs, err := s.Images()
		if err != nil {
			t.Fatalf("round %d: Images after kill: %v", round, err)
		}
		for _, img := range imgs {
			vi, err := s.V1Image(img)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(vi); err != nil {
				t.Fatalf("round %d: image %v broken after kill: %v", round, img.Names, err)
			}
		}
		if err := commitAndChurn(s, fmt.Sprintf("after%d", round), 0); err != nil {
			t.Fatalf("round %d: store unusable after kill: %v", round, err)
		}
	}
}
