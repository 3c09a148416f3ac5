package main

import "testing"

func TestPickRoot(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		flag string
		env  map[string]string
		euid int
		want string
	}{
		{"/flag", map[string]string{"LAYERBUILD_ROOT": "/env"}, 0, "/flag"},
		{"", map[string]string{"LAYERBUILD_ROOT": "/env"}, 1000, "/env"},
		{"", map[string]string{"XDG_DATA_HOME": "/xdg"}, 0, "/var/lib/layerbuild"},
		{"", map[string]string{"XDG_DATA_HOME": "/xdg", "HOME": "/home/u"}, 1000, "/xdg/layerbuild"},
		{"", map[string]string{"HOME": "/home/u"}, 1000, "/home/u/.local/share/layerbuild"},
	}
	for _, tc := range tests {
		if got := pickRoot(tc.flag, env(tc.env), tc.euid); got != tc.want {
			t.Errorf("pickRoot(%q, %v, %d) = %q, want %q", tc.flag, tc.env, tc.euid, got, tc.want)
		}
	}
}
