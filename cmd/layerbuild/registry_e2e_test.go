package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Push, pull and FROM against Debian's docker-registry, checked by skopeo and by a counting proxy.
func TestRegistryPushPullE2E(t *testing.T) {
	reg := startRegistry(t, nil)
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed")
	}
	e := newEnv(t)
	df := "FROM busybox\nRUN echo built > /built\nCOPY app.txt /app/\nCMD [\"cat\", \"/app/app.txt\"]\n"
	e.mustBuild(df, map[string]string{"app.txt": "line one\nline two\n"}, "-t", "me/app:1")
	dest := reg.Host + "/me/app:1"

	// First push: every layer, the config and the manifest.
	r := e.run(nil, "push", "me/app:1", dest)
	if r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	blobs, uploads, mans := reg.counts()
	layers := len(e.config("me/app:1").RootFS.DiffIDs)
	if blobs != layers+1 || mans != 1 {
		t.Fatalf("first push uploaded %d blobs (%d upload requests), %d manifests; want %d+1 blobs, 1 manifest\n%s", blobs, uploads, mans, layers, r)
	}
	if !strings.Contains(r.stdout, "3 layers uploaded, 0 already there, 0 mounted") || strings.Count(r.stderr, ": compressed ") != 3 {
		t.Fatalf("first push output:\n%s", r)
	}
	t.Logf("first push: %d blobs (%d upload requests), %d manifest", blobs, uploads, mans)

	// An independent client reads it back.
	out, err := exec.Command(skopeo, "inspect", "--tls-verify=false", "--config", "docker://"+dest).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var cfg struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
		Config struct {
			Cmd []string
		} `json:"config"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.RootFS.DiffIDs, ",") != "sha256:"+strings.Join(e.diffIDs("me/app:1"), ",sha256:") || strings.Join(cfg.Config.Cmd, " ") != "cat /app/app.txt" {
		t.Fatalf("skopeo sees config %s", out)
	}

	// Second push of the unchanged image: no blob upload, no compression.
	r = e.run(nil, "push", "me/app:1", dest)
	blobs, uploads, _ = reg.counts()
	if r.code != 0 || blobs != 0 || uploads != 0 || strings.Contains(r.stderr, "compressed") {
		t.Fatalf("second push: %d blobs, %d upload requests\n%s", blobs, uploads, r)
	}
	t.Logf("second push: %d blobs, %d upload requests", blobs, uploads)

	// A one-line change: only the COPY layer and the config go up (plus the manifest).
	e.mustBuild(df, map[string]string{"app.txt": "line one\nline 2\n"}, "-t", "me/app:2")
	r = e.run(nil, "push", "me/app:2", reg.Host+"/me/app:2")
	blobs, uploads, mans = reg.counts()
	if r.code != 0 || blobs != 2 || mans != 1 || strings.Count(r.stderr, ": compressed ") != 1 {
		t.Fatalf("push after a one-line change: %d blobs (%d upload requests), %d manifests; want 2 (layer + config), 1\n%s", blobs, uploads, mans, r)
	}
	t.Logf("push after one-line change: %d blobs (%d upload requests), %d manifest", blobs, uploads, mans)

	// Pull into a fresh store and build FROM it.
	e2 := newEnv(t)
	r = e2.run(nil, "pull", dest)
	if r.code != 0 || !strings.Contains(r.stdout, "Image ID: sha256:") {
		t.Fatalf("pull: %s", r)
	}
	if got, want := e2.diffIDs(dest), e.diffIDs("me/app:1"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pulled diff IDs %v, want %v", got, want)
	}
	b := e2.mustBuild("FROM "+dest+"\nRUN cat /app/app.txt /built > /out\n", nil, "-t", "child")
	if f := e2.files("child")["/out"]; f.data != "line one\nline two\nbuilt\n" {
		t.Fatalf("built FROM the pulled image: /out = %q\n%s", f.data, b)
	}
	// Pushing the child sends only its own layer: the base layers keep the registry's digests (nothing
	// compressed again) and are mounted from the repository they were pulled from.
	r = e2.run(nil, "push", "child", reg.Host+"/me/child:1")
	blobs, uploads, _ = reg.counts()
	if r.code != 0 || blobs != 2 || strings.Count(r.stderr, ": compressed ") != 1 || !strings.Contains(r.stdout, "1 layers uploaded, 0 already there, 3 mounted") {
		t.Fatalf("push of the child: %d blobs, want 2 (its layer + config)\n%s", blobs, r)
	}
	t.Logf("push of an image built FROM the pulled one to another repository: %d blobs (%d upload requests, mounts included)", blobs, uploads)

	// FROM an image the store lacks pulls it.
	e3 := newEnv(t)
	b = e3.mustBuild("FROM "+reg.Host+"/me/app:2\nRUN cat /app/app.txt > /out\n", nil, "-t", "auto")
	if f := e3.files("auto")["/out"]; f.data != "line one\nline 2\n" || !strings.Contains(b.stderr, "pulling "+reg.Host+"/me/app:2") {
		t.Fatalf("FROM a missing image: /out = %q\n%s", f.data, b)
	}
	// --pull pulls again (the registry answers with the same image: nothing fetched, same result).
	b = e3.mustBuild("FROM "+reg.Host+"/me/app:2\nRUN cat /app/app.txt > /out\n", nil, "-t", "auto", "--pull")
	if !strings.Contains(b.stderr, "pulling ") || !strings.Contains(b.stderr, "already exists") {
		t.Fatalf("--pull did not check the registry:\n%s", b)
	}
}

// An image pushed by skopeo (from our own oci-archive, as Docker v2 schema 2 with gzip layers) can be
// pulled and built FROM.
func TestRegistryPullSkopeoPushedE2E(t *testing.T) {
	reg := startRegistry(t, nil)
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed")
	}
	e := newEnv(t)
	e.mustBuild("FROM busybox\nRUN echo from-skopeo > /marker\n", nil, "-t", "sk:1")
	archive := filepath.Join(t.TempDir(), "sk.oci.tar")
	e.must("save", "--format", "oci-archive", "-o", archive, "sk:1")
	for _, c := range []struct{ ref, format string }{{"/sk/docker:1", "v2s2"}, {"/sk/oci:1", "oci"}} {
		out, err := exec.Command(skopeo, "copy", "--dest-tls-verify=false", "--dest-compress", "--format", c.format,
			"oci-archive:"+archive, "docker://"+reg.Host+c.ref).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo copy: %v\n%s", err, out)
		}
		e2 := newEnv(t)
		b := e2.mustBuild("FROM "+reg.Host+c.ref+"\nRUN cat /marker > /out\n", nil, "-t", "fromsk")
		if f := e2.files("fromsk")["/out"]; f.data != "from-skopeo\n" {
			t.Fatalf("%s: built FROM the skopeo-pushed image: /out = %q\n%s", c.format, f.data, b)
		}
	}
}

// login checks the credentials, writes docker's config.json, and push uses it; the password is never shown.
func TestRegistryLoginE2E(t *testing.T) {
	const user, pass = "alice", "Tr0ub4dor-and-3"
	reg := startRegistry(t, map[string]string{user: pass})
	e := newEnv(t)
	e.mustBuild("FROM busybox\nRUN echo secret-app > /x\n", nil, "-t", "priv:1")
	cfgDir := t.TempDir()
	envv := []string{"DOCKER_CONFIG=" + cfgDir}
	dest := reg.Host + "/team/priv:1"
	noPassword := func(r result) {
		t.Helper()
		if strings.Contains(r.stdout+r.stderr, pass) {
			t.Fatalf("the password was printed:\n%s", r)
		}
	}

	r := e.runEnv(envv, nil, "push", "priv:1", dest)
	noPassword(r)
	if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "unauthorized") {
		t.Fatalf("push without login: %s", r)
	}

	r = e.runEnv(envv, strings.NewReader("not-"+pass+"\n"), "login", "-u", user, "--password-stdin", reg.Host)
	noPassword(r)
	if r.code == 0 || !strings.Contains(r.stderr, "wrong username or password") || strings.Contains(r.stderr, "not-"+pass) {
		t.Fatalf("login with a wrong password: %s", r)
	}
	if _, err := os.Stat(filepath.Join(cfgDir, "config.json")); err == nil {
		t.Fatal("a failed login wrote config.json")
	}

	r = e.runEnv(envv, strings.NewReader(pass+"\n"), "login", "-u", user, "--password-stdin", reg.Host)
	noPassword(r)
	if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login: %s", r)
	}
	raw, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	if got := cf.Auths[reg.Host].Auth; got != base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) {
		t.Fatalf("config.json auths[%s] = %q\n%s", reg.Host, got, raw)
	}

	r = e.runEnv(envv, nil, "push", "priv:1", dest)
	noPassword(r)
	if r.code != 0 {
		t.Fatalf("push after login: %s", r)
	}
	e2 := newEnv(t)
	r = e2.runEnv(envv, nil, "pull", dest)
	noPassword(r)
	if r.code != 0 {
		t.Fatalf("pull after login: %s", r)
	}

	r = e.runEnv(envv, nil, "logout", reg.Host)
	if r.code != 0 || !strings.Contains(r.stdout, "Removing login credentials") {
		t.Fatalf("logout: %s", r)
	}
	r = newEnv(t).runEnv(envv, nil, "pull", dest)
	if r.code == 0 {
		t.Fatalf("pull after logout succeeded: %s", r)
	}
}
