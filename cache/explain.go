package cache

import (
	"fmt"
	"sort"
	"strings"
)

// Explain says why step cur was not reused, comparing it with prev, the same step of the last build of the same
// Dockerfile and stage (nil when there is none). parent is the step number of the step before cur in its stage
// when that step was rebuilt in this build (0 when it was reused or cur is the first).
// The first difference found in the step's own inputs wins; a rebuilt parent is named only when the step's own
// inputs are unchanged.
func Explain(prev, cur *StepRecord, parent int) string {
	if prev == nil {
		return "no earlier build"
	}
	if cur.BaseID != "" || prev.BaseID != "" {
		if strings.HasPrefix(cur.BaseID, "stage:") && cur.Base == prev.Base && cur.BaseID != prev.BaseID {
			return fmt.Sprintf("stage %s rebuilt", cur.Base)
		}
		if cur.Base != prev.Base {
			return fmt.Sprintf("base image changed: %s -> %s", prev.Base, cur.Base)
		}
		if cur.BaseID != prev.BaseID {
			return fmt.Sprintf("base image %s changed (%s -> %s)", cur.Base, shortDigest(prev.BaseID), shortDigest(cur.BaseID))
		}
	}
	if norm(cur.Instruction) != norm(prev.Instruction) {
		return fmt.Sprintf("instruction changed (was: %s)", shorten(norm(prev.Instruction), 50))
	}
	if r := filesChanged(prev.Files, cur.Files); r != "" {
		return r
	}
	if r := mapChanged("build-arg", prev.Args, cur.Args); r != "" {
		return r
	}
	if r := mapChanged("env", envMap(prev.Env), envMap(cur.Env)); r != "" {
		return r
	}
	for _, f := range []struct{ name, a, b string }{
		{"USER", prev.User, cur.User},
		{"WORKDIR", prev.Workdir, cur.Workdir},
		{"SHELL", strings.Join(prev.Shell, " "), strings.Join(cur.Shell, " ")},
		{"network", prev.Network, cur.Network},
	} {
		if f.a != f.b {
			return fmt.Sprintf("%s changed %s -> %s", f.name, orNone(f.a), orNone(f.b))
		}
	}
	if cur.FromKey != prev.FromKey {
		return fmt.Sprintf("source %s changed", orNone(cur.FromName))
	}
	if cur.Canonical != prev.Canonical {
		return "instruction expands differently"
	}
	if parent > 0 {
		return fmt.Sprintf("parent step %d rebuilt", parent)
	}
	if cur.Key == prev.Key {
		return "cache entry missing (pruned?)"
	}
	return "inputs changed"
}

// ChangedFiles lists the source paths that differ between two records (changed, added or removed).
func ChangedFiles(prev, cur map[string]string) []string {
	var out []string
	for p, d := range cur {
		if pd, ok := prev[p]; !ok || pd != d {
			out = append(out, p)
		}
	}
	for p := range prev {
		if _, ok := cur[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// filesChanged describes how COPY/ADD sources differ: "2 files changed: a, b (+1 added: c) (-1 removed: d)".
func filesChanged(prev, cur map[string]string) string {
	var changed, added, removed []string
	for p, d := range cur {
		if pd, ok := prev[p]; !ok {
			added = append(added, p)
		} else if pd != d {
			changed = append(changed, p)
		}
	}
	for p := range prev {
		if _, ok := cur[p]; !ok {
			removed = append(removed, p)
		}
	}
	if len(changed)+len(added)+len(removed) == 0 {
		return ""
	}
	var parts []string
	if len(changed) > 0 {
		parts = append(parts, fmt.Sprintf("%s changed: %s", plural(len(changed), "file"), list(changed)))
	}
	if len(added) > 0 {
		parts = append(parts, fmt.Sprintf("+%d added: %s", len(added), list(added)))
	}
	if len(removed) > 0 {
		parts = append(parts, fmt.Sprintf("-%d removed: %s", len(removed), list(removed)))
	}
	if len(changed) == 0 {
		return strings.Join(parts, ", ")
	}
	out := parts[0]
	for _, p := range parts[1:] {
		out += " (" + p + ")"
	}
	return out
}

func mapChanged(what string, prev, cur map[string]string) string {
	keys := map[string]bool{}
	for k := range prev {
		keys[k] = true
	}
	for k := range cur {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		a, inA := prev[k]
		b, inB := cur[k]
		switch {
		case inA && inB && a != b:
			return fmt.Sprintf("%s %s changed %s -> %s", what, k, shorten(a, 30), shorten(b, 30))
		case !inA && inB:
			return fmt.Sprintf("%s %s set to %s", what, k, shorten(b, 30))
		case inA && !inB:
			return fmt.Sprintf("%s %s no longer set", what, k)
		}
	}
	return ""
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func list(names []string) string {
	sort.Strings(names)
	const max = 5
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(", ... (%d more)", len(names)-max)
	}
	return strings.Join(names, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func norm(s string) string { return strings.Join(strings.Fields(s), " ") }

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

// shortDigest abbreviates sha256:abcdef... to sha256:abcdef012345 for messages.
func shortDigest(d string) string {
	if rest, ok := strings.CutPrefix(d, "sha256:"); ok && len(rest) > 12 {
		return "sha256:" + rest[:12]
	}
	if rest, ok := strings.CutPrefix(d, "image:sha256:"); ok && len(rest) > 12 {
		return "sha256:" + rest[:12]
	}
	return d
}
