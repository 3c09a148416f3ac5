package builder

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
)

// owner is a uid/gid pair; nil means "keep what the source has" (or root for context files).
type owner struct{ uid, gid int }

// resolveOwner resolves a --chown value (user[:group], names or numbers) against the rootfs's
// /etc/passwd and /etc/group, as BuildKit does: a user without group uses the user's primary group when
// named, and the same number when numeric.
func resolveOwner(rootfs, spec string) (*owner, error) {
	if spec == "" {
		return nil, nil
	}
	u, g, hasGroup := strings.Cut(spec, ":")
	var o owner
	if n, err := strconv.Atoi(u); err == nil {
		o.uid, o.gid = n, n
	} else {
		pw, err := lookupUser(rootfs, u)
		if err != nil {
			return nil, err
		}
		o.uid, o.gid = pw.Uid, pw.Gid
	}
	if hasGroup {
		if n, err := strconv.Atoi(g); err == nil {
			o.gid = n
		} else {
			gr, err := lookupGroup(rootfs, g)
			if err != nil {
				return nil, err
			}
			o.gid = gr.Gid
		}
	}
	return &o, nil
}

// userOwner resolves a USER value for directories created on its behalf (WORKDIR); unknown names fall back
// to root, since the RUN that uses them reports the error.
func userOwner(rootfs, spec string) owner {
	if spec == "" {
		return owner{}
	}
	u, g, hasGroup := strings.Cut(spec, ":")
	var o owner
	if n, err := strconv.Atoi(u); err == nil {
		o.uid = n
		if pw, err := lookupUID(rootfs, n); err == nil {
			o.gid = pw.Gid
		}
	} else if pw, err := lookupUser(rootfs, u); err == nil {
		o.uid, o.gid = pw.Uid, pw.Gid
	}
	if hasGroup {
		if n, err := strconv.Atoi(g); err == nil {
			o.gid = n
		} else if gr, err := lookupGroup(rootfs, g); err == nil {
			o.gid = gr.Gid
		}
	}
	return o
}

func openInRoot(rootfs, name string) (*os.File, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

func lookupUser(rootfs, name string) (user.User, error) {
	f, err := openInRoot(rootfs, "/etc/passwd")
	if err != nil {
		return user.User{}, fmt.Errorf("unable to find user %s: no /etc/passwd in the image", name)
	}
	defer f.Close()
	users, err := user.ParsePasswdFilter(f, func(u user.User) bool { return u.Name == name })
	if err != nil || len(users) == 0 {
		return user.User{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
	}
	return users[0], nil
}

func lookupUID(rootfs string, uid int) (user.User, error) {
	f, err := openInRoot(rootfs, "/etc/passwd")
	if err != nil {
		return user.User{}, err
	}
	defer f.Close()
	users, err := user.ParsePasswdFilter(f, func(u user.User) bool { return u.Uid == uid })
	if err != nil || len(users) == 0 {
		return user.User{}, fmt.Errorf("no user with uid %d", uid)
	}
	return users[0], nil
}

func lookupGroup(rootfs, name string) (user.Group, error) {
	f, err := openInRoot(rootfs, "/etc/group")
	if err != nil {
		return user.Group{}, fmt.Errorf("unable to find group %s: no /etc/group in the image", name)
	}
	defer f.Close()
	groups, err := user.ParseGroupFilter(f, func(g user.Group) bool { return g.Name == name })
	if err != nil || len(groups) == 0 {
		return user.Group{}, fmt.Errorf("unable to find group %s: no matching entries in group file", name)
	}
	return groups[0], nil
}
