package registry

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
)

// Docker's reference grammar (distribution's reference package), which go-containerregistry's
// character checks are looser than: "a//b", "-a", "a.", or a tag starting with "." must be refused.
var (
	pathComponentRE   = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	domainComponentRE = regexp.MustCompile(`^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$`)
	portRE            = regexp.MustCompile(`^[0-9]+$`)
	ipv6RE            = regexp.MustCompile(`^\[[a-fA-F0-9:]+\]$`)
	tagRE             = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

const (
	dockerHub        = "docker.io"
	officialPrefix   = "docker.io/library/"
	maxNameLength    = 255
	defaultTagString = "latest"
)

// NormalizeName turns a reference into docker's full form: busybox -> docker.io/library/busybox:latest.
// Tags and digests are kept (busybox@sha256:... -> docker.io/library/busybox@sha256:...); a name
// without either gets ":latest". index.docker.io is written docker.io, as docker displays it.
func NormalizeName(ref string) (string, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid reference %q: %s", ref, fmt.Sprintf(format, args...))
	}
	if ref == "" {
		return "", bad("empty name")
	}
	if len(ref) == 64 && isHex(ref) {
		return "", bad("a 64-character hexadecimal string is an image ID, not a name")
	}
	if strings.Contains(ref, "://") {
		return "", bad("a reference has no URL scheme")
	}
	rest, dig := ref, ""
	if i := strings.Index(ref, "@"); i >= 0 {
		rest, dig = ref[:i], ref[i+1:]
		if _, err := digest.Parse(dig); err != nil {
			return "", bad("bad digest %q: %v", dig, err)
		}
	}
	repo, tag := rest, ""
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		repo, tag = rest[:i], rest[i+1:]
		if !tagRE.MatchString(tag) {
			return "", bad("bad tag %q", tag)
		}
	}
	// The first path element is a registry host when it looks like one, as docker decides.
	domain, path := "", repo
	if i := strings.Index(repo, "/"); i >= 0 {
		first := repo[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			domain, path = first, repo[i+1:]
		}
	}
	if domain == "" || domain == "index.docker.io" {
		domain = dockerHub
	} else if err := checkDomain(domain); err != nil {
		return "", bad("%v", err)
	}
	if path == "" {
		return "", bad("empty repository name")
	}
	if domain == dockerHub && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	for _, c := range strings.Split(path, "/") {
		if pathComponentRE.MatchString(c) {
			continue
		}
		if pathComponentRE.MatchString(strings.ToLower(c)) {
			return "", bad("repository name must be lowercase")
		}
		return "", bad("bad repository name component %q", c)
	}
	full := domain + "/" + path
	if len(full) > maxNameLength {
		return "", bad("repository name longer than %d characters", maxNameLength)
	}
	if tag == "" && dig == "" {
		tag = defaultTagString
	}
	if tag != "" {
		full += ":" + tag
	}
	if dig != "" {
		full += "@" + dig
	}
	// Whatever we accept must also parse for go-containerregistry (push, pull, save use it).
	if _, err := name.ParseReference(full); err != nil {
		return "", bad("%v", err)
	}
	return full, nil
}

func checkDomain(domain string) error {
	host := domain
	if strings.HasPrefix(host, "[") {
		end := strings.Index(host, "]")
		if end < 0 || !ipv6RE.MatchString(host[:end+1]) {
			return fmt.Errorf("bad registry host %q", domain)
		}
		host, domain = host[:end+1], host[end+1:]
		if domain != "" && (!strings.HasPrefix(domain, ":") || !portRE.MatchString(domain[1:])) {
			return fmt.Errorf("bad registry port in %q", host+domain)
		}
		return nil
	}
	if i := strings.LastIndex(host, ":"); i >= 0 {
		if !portRE.MatchString(host[i+1:]) {
			return fmt.Errorf("bad registry port in %q", domain)
		}
		host = host[:i]
	}
	for _, c := range strings.Split(host, ".") {
		if !domainComponentRE.MatchString(c) {
			return fmt.Errorf("bad registry host %q", domain)
		}
	}
	return nil
}

// FamiliarName is the short form docker displays: docker.io/library/busybox:latest -> busybox:latest,
// docker.io/me/api:1 -> me/api:1; other registries are kept.
func FamiliarName(full string) string {
	if rest, ok := strings.CutPrefix(full, officialPrefix); ok && !strings.Contains(repoPart(rest), "/") {
		return rest
	}
	if rest, ok := strings.CutPrefix(full, dockerHub+"/"); ok {
		return rest
	}
	return full
}

// SplitName cuts a normalized name into repository and tag (or digest) for display:
// docker.io/library/busybox:latest -> ("docker.io/library/busybox", "latest");
// x@sha256:... -> ("x", "sha256:...").
func SplitName(full string) (repo, tag string) {
	if i := strings.Index(full, "@"); i >= 0 {
		repo, tag = full[:i], full[i+1:]
		if j := strings.LastIndex(repo, ":"); j >= 0 && !strings.Contains(repo[j+1:], "/") {
			repo = repo[:j]
		}
		return repo, tag
	}
	if j := strings.LastIndex(full, ":"); j >= 0 && !strings.Contains(full[j+1:], "/") {
		return full[:j], full[j+1:]
	}
	return full, ""
}

// repoPart drops the tag and digest of a reference.
func repoPart(ref string) string {
	r, _ := SplitName(ref)
	return r
}

// hasDigest tells whether a normalized name pins a digest.
func hasDigest(full string) bool { return strings.Contains(full, "@") }
