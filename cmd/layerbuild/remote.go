package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/layerbuild/layerbuild/registry"
)

// dockerHubAuthKey is the key docker uses for Docker Hub in config.json.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// remoteFlags are the flags every command that talks to a registry has.
type remoteFlags struct {
	insecure []string
}

func (f *remoteFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.insecure, "insecure-registry", nil,
		"allow plain HTTP and unverified TLS for this registry (HOST or HOST:PORT; localhost and 127.0.0.1 always are); repeatable")
}

// options gives registry options that print per-layer progress lines to w.
func (f *remoteFlags) options(w io.Writer) registry.RemoteOptions {
	return registry.RemoteOptions{
		Insecure: f.insecure,
		Progress: func(line string) { fmt.Fprintln(w, line) },
	}
}

func newPushCmd(g *globalOpts) *cobra.Command {
	var rf remoteFlags
	var compression string
	cmd := &cobra.Command{
		Use:   "push [--insecure-registry HOST]... [--compression gzip] IMAGE [DEST]",
		Short: "Push an image to a registry (as DEST when given)",
		Long: `Push an image of the local store to a registry, under its own name or DEST.

Credentials come from docker's config.json ($DOCKER_CONFIG, else ~/.docker), credential helpers
included: see "layerbuild login". Layers are gzip-compressed once; the compressed blobs are kept,
so pushing again compresses nothing, and blobs the registry has already are not uploaded.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if compression != "gzip" {
				return fmt.Errorf("--compression %s: only gzip is supported so far", compression)
			}
			st, err := g.store()
			if err != nil {
				return err
			}
			dest := ""
			if len(args) == 2 {
				dest = args[1]
			}
			res, err := registry.Push(cmd.Context(), st, args[0], dest, rf.options(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: digest: %s size: %d (%d layers uploaded, %d already there, %d mounted)\n",
				res.Ref, res.Digest, res.Size, res.Uploaded, res.Existing, res.Mounted)
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().StringVar(&compression, "compression", "gzip", "layer compression: gzip")
	return cmd
}

func newPullCmd(g *globalOpts) *cobra.Command {
	var rf remoteFlags
	var platform string
	cmd := &cobra.Command{
		Use:   "pull [--insecure-registry HOST]... [--platform OS/ARCH[/VARIANT]] IMAGE",
		Short: "Pull an image from a registry into the local store",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.store()
			if err != nil {
				return err
			}
			o := rf.options(cmd.ErrOrStderr())
			if platform != "" {
				p, err := v1.ParsePlatform(platform)
				if err != nil {
					return fmt.Errorf("--platform %s: %w", platform, err)
				}
				o.Platform = p
			}
			img, err := registry.Pull(cmd.Context(), st, args[0], o)
			if err != nil {
				return err
			}
			name := args[0]
			if len(img.Names) > 0 {
				name = img.Names[0]
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Digest: %s\nImage ID: %s (%s)\n%s\n", img.Digest, img.ID,
				units.HumanSize(float64(img.Size)), name)
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().StringVar(&platform, "platform", "", "platform to take from a multi-platform image (default linux and this machine's architecture)")
	return cmd
}

// pullHook is the builder's Pull: FROM an image the store lacks (or every FROM with --pull) pulls it,
// with one progress line per layer on w.
func pullHook(st *registry.Store, rf *remoteFlags, w io.Writer) func(context.Context, string) (*registry.Image, error) {
	return func(ctx context.Context, ref string) (*registry.Image, error) {
		fmt.Fprintf(w, "pulling %s\n", ref)
		o := rf.options(w)
		o.Progress = func(line string) { fmt.Fprintf(w, "pull %s\n", line) }
		return registry.Pull(ctx, st, ref, o)
	}
}

// loginServer gives the registry host to talk to and the key docker's config.json uses for it.
func loginServer(arg string) (host, key string) {
	s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(arg, "https://"), "http://"), "/")
	s = strings.TrimSuffix(s, "/v1")
	switch s {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		return "index.docker.io", dockerHubAuthKey
	}
	return s, s
}

func newLoginCmd() *cobra.Command {
	var rf remoteFlags
	var user string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [-u USER] [--password-stdin] [REGISTRY]",
		Short: "Log in to a registry (Docker Hub by default), as docker login does",
		Long: `Check the credentials against the registry, then store them where docker does: a credential
helper when config.json names one (credsStore, credHelpers), else the "auths" entry of config.json
in $DOCKER_CONFIG or ~/.docker. The password is read from stdin (--password-stdin) or a terminal
prompt; it is never taken from the command line.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			host, key := loginServer(arg)
			in := cmd.InOrStdin()
			tty, _ := in.(*os.File)
			interactive := tty != nil && isTerminal(tty)
			if user == "" {
				if !interactive || passwordStdin {
					return errors.New("login: give the username with -u")
				}
				fmt.Fprint(cmd.ErrOrStderr(), "Username: ")
				line, err := bufio.NewReader(tty).ReadString('\n')
				if err != nil {
					return fmt.Errorf("login: read username: %w", err)
				}
				user = strings.TrimSpace(line)
			}
			var password string
			switch {
			case passwordStdin:
				b, err := io.ReadAll(in)
				if err != nil {
					return fmt.Errorf("login: read password from stdin: %w", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			case interactive:
				fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
				b, err := term.ReadPassword(int(tty.Fd()))
				fmt.Fprintln(cmd.ErrOrStderr())
				if err != nil {
					return fmt.Errorf("login: read password: %w", err)
				}
				password = string(b)
			default:
				return errors.New("login: no terminal to ask for the password: use --password-stdin")
			}
			if user == "" || password == "" {
				return errors.New("login: username and password must not be empty")
			}
			if err := registry.CheckLogin(cmd.Context(), host, user, password, rf.options(io.Discard)); err != nil {
				return err
			}
			cf, err := dockerconfig.Load(dockerconfig.Dir())
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{Username: user, Password: password, ServerAddress: key}); err != nil {
				return fmt.Errorf("login: store credentials in %s: %s", cf.Filename, strings.ReplaceAll(err.Error(), password, "******"))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Login Succeeded (credentials for %s stored for %s)\n", user, key)
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().StringVarP(&user, "username", "u", "", "username")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [REGISTRY]",
		Short: "Remove the stored credentials of a registry (Docker Hub by default)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			_, key := loginServer(arg)
			cf, err := dockerconfig.Load(dockerconfig.Dir())
			if err != nil {
				return fmt.Errorf("logout: %w", err)
			}
			if _, ok := cf.GetAuthConfigs()[key]; !ok && cf.CredentialsStore == "" && cf.CredentialHelpers[key] == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Not logged in to %s\n", key)
				return nil
			}
			if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
				return fmt.Errorf("logout %s: %w", key, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removing login credentials for %s\n", key)
			return nil
		},
	}
}
