package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Remote registries: push, pull and the login check, over go-containerregistry's remote package
// (parallel uploads, HEAD before upload, bearer-token and basic auth, retries of transient errors).

// DefaultCertsDir is docker's per-registry certificate directory: certs.d/HOST[:PORT]/ca.crt adds a CA,
// client.cert and client.key a client certificate.
const DefaultCertsDir = "/etc/docker/certs.d"

// RemoteOptions configure talking to registries. The zero value is usable.
type RemoteOptions struct {
	// Insecure lists registries (host or host:port) reached over plain HTTP or unverified TLS.
	// localhost, 127.0.0.0/8 and ::1 are always allowed plain HTTP (as docker does).
	Insecure []string
	// CertsDir holds per-registry CAs (default DefaultCertsDir).
	CertsDir string
	// Keychain finds credentials (default authn.DefaultKeychain: docker's config.json, DOCKER_CONFIG,
	// credential helpers). Auth, when set, is used instead.
	Keychain authn.Keychain
	Auth     authn.Authenticator
	// Platform is what Pull picks from a multi-platform index (default linux/GOARCH of this machine).
	Platform *v1.Platform
	// Jobs is how many blobs move at once (default 4).
	Jobs int
	// Progress receives one line per layer event (nil: quiet).
	Progress func(line string)
	// Transport is the base HTTP transport (default: a clone of http.DefaultTransport); TLS settings
	// from Insecure and CertsDir are applied to it when it is an *http.Transport.
	Transport http.RoundTripper
}

func (o *RemoteOptions) jobs() int {
	if o.Jobs <= 0 {
		return 4
	}
	return o.Jobs
}

func (o *RemoteOptions) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// isInsecure tells whether registry host (host[:port]) may be reached without verified TLS.
func (o *RemoteOptions) isInsecure(host string) bool {
	for _, h := range o.Insecure {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://"), "/")
		if h == host {
			return true
		}
		if hn, _, err := net.SplitHostPort(host); err == nil && hn == h {
			return true
		}
	}
	return false
}

// ParseRemote parses an image reference for a registry (docker.io normalization), marking registries
// listed in Insecure so that plain HTTP is allowed for them.
func (o *RemoteOptions) ParseRemote(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid reference %q: %w", ref, err)
	}
	if o.isInsecure(r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// transport builds the HTTP transport for one registry: system CAs plus certs.d/HOST/ca.crt,
// verification off only for registries listed as insecure.
func (o *RemoteOptions) transport(reg name.Registry) (http.RoundTripper, error) {
	base := o.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return base, nil
	}
	t = t.Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.TLSClientConfig != nil {
		cfg = t.TLSClientConfig.Clone()
	}
	host := reg.RegistryStr()
	if o.isInsecure(host) {
		cfg.InsecureSkipVerify = true
	}
	dir := o.CertsDir
	if dir == "" {
		dir = DefaultCertsDir
	}
	hostDir := filepath.Join(dir, host)
	if ca, err := os.ReadFile(filepath.Join(hostDir, "ca.crt")); err == nil {
		pool, perr := x509.SystemCertPool()
		if perr != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("registry %s: no certificate in %s", host, filepath.Join(hostDir, "ca.crt"))
		}
		cfg.RootCAs = pool
	}
	if _, err := os.Stat(filepath.Join(hostDir, "client.cert")); err == nil {
		cert, err := tls.LoadX509KeyPair(filepath.Join(hostDir, "client.cert"), filepath.Join(hostDir, "client.key"))
		if err != nil {
			return nil, fmt.Errorf("registry %s: client certificate: %w", host, err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	t.TLSClientConfig = cfg
	return t, nil
}

func (o *RemoteOptions) remoteOptions(ctx context.Context, reg name.Registry) ([]remote.Option, error) {
	t, err := o.transport(reg)
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(t), remote.WithJobs(o.jobs()),
		remote.WithUserAgent("layerbuild")}
	switch {
	case o.Auth != nil:
		opts = append(opts, remote.WithAuth(o.Auth))
	case o.Keychain != nil:
		opts = append(opts, remote.WithAuthFromKeychain(o.Keychain))
	default:
		opts = append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	return opts, nil
}

// CheckLogin verifies user and password against registry host (GET /v2/ with the credentials, after the
// bearer-token exchange when the registry asks for one). The password never appears in the error.
func CheckLogin(ctx context.Context, host, user, password string, o RemoteOptions) error {
	var nopts []name.Option
	if o.isInsecure(host) {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nopts...)
	if err != nil {
		return fmt.Errorf("invalid registry %q: %w", host, err)
	}
	base, err := o.transport(reg)
	if err != nil {
		return err
	}
	auth := &authn.Basic{Username: user, Password: password}
	t, err := transport.NewWithContext(ctx, reg, auth, base, []string{})
	if err != nil {
		return loginError(host, err, password)
	}
	schemes := []string{reg.Scheme()}
	if reg.Scheme() == "http" {
		schemes = []string{"https", "http"}
	}
	var last error
	for _, scheme := range schemes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+reg.RegistryStr()+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Transport: t}).Do(req)
		if err != nil {
			last = err
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return nil
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("login to %s failed: wrong username or password (%s)", host, resp.Status)
		default:
			return fmt.Errorf("login to %s failed: GET /v2/ answered %s", host, resp.Status)
		}
	}
	return loginError(host, last, password)
}

func loginError(host string, err error, password string) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("login to %s failed: wrong username or password (%d %s)", host, te.StatusCode, http.StatusText(te.StatusCode))
	}
	msg := err.Error()
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "******")
	}
	return fmt.Errorf("login to %s failed: %s", host, msg)
}
