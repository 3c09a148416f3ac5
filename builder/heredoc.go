package builder

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// heredocPipes is where a RUN heredoc script with a shebang is written inside the sandbox, as BuildKit
// does: /dev is the sandbox's own tmpfs, so the file never reaches the rootfs or the layer.
const heredocPipes = "/dev/pipes"

// runArgv is the argv of a RUN and what its stdin gets, following BuildKit's dispatchRun:
//   - no heredoc: the shell form goes through SHELL, the exec form runs as it is;
//   - a lone heredoc (`RUN <<EOF`): its content is the shell's script (`<<-` strips leading tabs);
//     content starting with `#!` is written to /dev/pipes/NAME (0755) and executed, so the kernel runs the
//     interpreter the shebang names;
//   - anything else (`RUN cat <<EOF > /x`, several heredocs): the command line and the heredocs are put
//     back together and handed to the shell, which feeds each heredoc to its command (stdin or files) and
//     expands it or not (quoted delimiter) by its own rules.
func runArgv(s *stageState, c *instructions.RunCommand) (argv []string, stdin string, err error) {
	if len(c.Files) == 0 {
		return cmdLine(s, c.ShellDependantCmdLine), "", nil
	}
	if len(c.CmdLine) != 1 || !c.PrependShell {
		return nil, "", fmt.Errorf("heredocs in RUN need the shell form")
	}
	if dfparser.MustParseHeredoc(c.CmdLine[0]) != nil {
		data := c.Files[0].Data
		if c.Files[0].Chomp {
			data = dfparser.ChompHeredocContent(data)
		}
		if strings.HasPrefix(data, "#!") {
			return append(append([]string{}, s.shell()...), shebangScript(c.Files[0].Name, data)), data, nil
		}
		return append(append([]string{}, s.shell()...), data), "", nil
	}
	var b strings.Builder
	b.WriteString(c.CmdLine[0])
	for _, f := range c.Files {
		b.WriteByte('\n')
		b.WriteString(f.Data)
		b.WriteString(f.Name)
	}
	return append(append([]string{}, s.shell()...), b.String()), "", nil
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shebangScript is the shell command that runs a heredoc script with a shebang, the script coming on
// stdin: written to /dev/pipes/NAME and executed (as BuildKit does) when the user may create /dev/pipes
// (root); otherwise written to the sandbox's /dev/shm, which is noexec, and passed to the interpreter the
// shebang names, as the kernel would (interpreter, its one optional argument, the script's path).
func shebangScript(name, data string) string {
	line, _, _ := strings.Cut(strings.TrimPrefix(data, "#!"), "\n")
	line = strings.TrimSpace(line)
	interp, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	run := shQuote(interp)
	if arg != "" {
		run += " " + shQuote(arg)
	}
	f := shQuote(heredocPipes + "/" + name)
	return fmt.Sprintf("if mkdir -p %s 2>/dev/null && [ -w %s ]; then cat > %s && chmod 0755 %s && exec %s </dev/null; exit 126; fi; "+
		"f=$(mktemp /dev/shm/heredoc.XXXXXX) && cat > \"$f\" && exec %s \"$f\" </dev/null",
		heredocPipes, heredocPipes, f, f, f, run)
}
