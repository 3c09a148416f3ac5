package parser

import (
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Expander expands $VAR and ${VAR...} words as a Dockerfile does, with BuildKit's lexer.
type Expander struct {
	lex *shell.Lex
}

// NewExpander makes an expander for a Dockerfile with this escape token.
func NewExpander(escape rune) *Expander {
	if escape == 0 {
		escape = '\\'
	}
	return &Expander{lex: shell.NewLex(escape)}
}

// Word expands one word with env (KEY=VALUE entries; later entries win).
func (e *Expander) Word(word string, env []string) (string, error) {
	s, _, err := e.lex.ProcessWord(word, shell.EnvsFromSlice(env))
	return s, err
}

// RawWord expands variables in the content of a COPY/ADD heredoc as BuildKit does: always with the `\`
// escape, leaving quotes as they are.
func RawWord(word string, env []string) (string, error) {
	lex := shell.NewLex('\\')
	lex.SkipProcessQuotes = true
	s, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(env))
	return s, err
}

// SetEnv sets key=value in a KEY=VALUE list, replacing an earlier entry.
func SetEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// LookupEnv finds key in a KEY=VALUE list (the last entry wins).
func LookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == key {
			return v, true
		}
	}
	return "", false
}
