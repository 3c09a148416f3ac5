package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testRegistry is Debian's docker-registry (distribution) serving 127.0.0.1 on a free port with
// filesystem storage in a temp dir, behind a counting reverse proxy. Host is the proxy's host:port:
// clients talk to it, so every request is counted.
type testRegistry struct {
	Host string
	log  string

	mu       sync.Mutex
	blobPuts int // completed blob uploads (PUT .../blobs/uploads/...)
	uploads  int // every upload request (POST, PATCH, PUT under /blobs/uploads/)
	manPuts  int // manifest PUTs
}

// startRegistry starts a registry; with users (name -> password) it requires htpasswd basic auth.
func startRegistry(t *testing.T, users map[string]string) *testRegistry {
	t.Helper()
	if testing.Short() {
		t.Skip("real-registry test skipped in -short mode")
	}
	bin := needTool(t, "docker-registry")
	dir := t.TempDir()
	port := freePort(t)
	auth := ""
	if len(users) > 0 {
		htpasswd := needTool(t, "htpasswd")
		var lines []string
		for u, p := range users {
			cmd := exec.Command(htpasswd, "-niB", u) // password on stdin, never on argv
			cmd.Stdin = strings.NewReader(p + "\n")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("htpasswd: %v", err)
			}
			lines = append(lines, strings.TrimSpace(string(out)))
		}
		pwFile := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(pwFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: layerbuild-test\n    path: %s\n", pwFile)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:%d
  secret: layerbuild-test-secret
%s`, filepath.Join(dir, "data"), port, auth)
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &testRegistry{log: filepath.Join(dir, "registry.log")}
	logf, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(r.log); err == nil {
				t.Logf("registry log (tail):\n%s", tail(string(b), 40))
			}
		}
	})
	backend := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(backend + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.log)
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", backend, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	u, _ := url.Parse(backend)
	proxy := httputil.NewSingleHostReverseProxy(u) // keeps the client's Host: Location headers name the proxy
	proxy.ErrorLog = nil
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		if strings.Contains(req.URL.Path, "/blobs/uploads/") && req.Method != http.MethodGet && req.Method != http.MethodHead {
			r.uploads++
			if req.Method == http.MethodPut {
				r.blobPuts++
			}
		}
		if strings.Contains(req.URL.Path, "/manifests/") && req.Method == http.MethodPut {
			r.manPuts++
		}
		r.mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// counts returns and resets the counters: completed blob uploads, upload requests, manifest PUTs.
func (r *testRegistry) counts() (blobs, uploads, manifests int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	blobs, uploads, manifests = r.blobPuts, r.uploads, r.manPuts
	r.blobPuts, r.uploads, r.manPuts = 0, 0, 0
	return
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runEnv runs layerbuild on this store with extra environment variables.
func (e *env) runEnv(extra []string, stdin io.Reader, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(lbBin, args...)
	cmd.Env = append(append(os.Environ(), "LAYERBUILD_ROOT="+e.root), extra...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run layerbuild %v: %v", args, err)
	}
	return res
}
