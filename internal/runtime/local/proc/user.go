package proc

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// User is the identity services run as.
type User struct {
	Name string
	UID  int
	GID  int
	// Switch is true when the server must change identity to run as this
	// user (it runs as root); false when it already is this user.
	Switch bool
}

// Credential returns the SysProcAttr credential for the user, or nil when
// no switch is needed. Supplementary groups are dropped so root's groups do
// not leak into services.
func (u *User) Credential() *syscall.Credential {
	if u == nil || !u.Switch {
		return nil
	}
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}
}

// Chown changes path's owner to the user when switching; otherwise nothing.
func (u *User) Chown(path string) error {
	if u == nil || !u.Switch {
		return nil
	}
	return os.Lchown(path, u.UID, u.GID)
}

// ResolveUser decides who services run as. When the server runs as root
// they must not: name (default "sandpit") is looked up and, if missing and
// create is true, created as a system user with useradd. When the server is
// not root, services run as the server's own user and name must be empty or
// that user.
func ResolveUser(name string, create bool) (*User, error) {
	if os.Geteuid() != 0 {
		cur, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("look up current user: %w", err)
		}
		if name != "" && name != cur.Username {
			return nil, fmt.Errorf("cannot run services as %q: the server runs as %q and is not root; run the server as root or drop --run-as", name, cur.Username)
		}
		uid, _ := strconv.Atoi(cur.Uid)
		gid, _ := strconv.Atoi(cur.Gid)
		return &User{Name: cur.Username, UID: uid, GID: gid}, nil
	}
	if name == "" {
		name = "sandpit"
	}
	if name == "root" {
		return nil, fmt.Errorf("services must not run as root: choose an unprivileged user with --run-as (PostgreSQL refuses to run as root, too)")
	}
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if !create || !asUnknownUser(err, &unknown) {
			return nil, fmt.Errorf("look up user %q: %w; create it (useradd --system %s) or pick another with --run-as", name, err, name)
		}
		out, cerr := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if cerr != nil {
			return nil, fmt.Errorf("create user %q with useradd: %v: %s", name, cerr, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup(name); err != nil {
			return nil, fmt.Errorf("look up user %q after creating it: %w", name, err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return nil, fmt.Errorf("user %q has uid 0: services must not run as root; pick an unprivileged user with --run-as", name)
	}
	return &User{Name: name, UID: uid, GID: gid, Switch: true}, nil
}

func asUnknownUser(err error, target *user.UnknownUserError) bool {
	u, ok := err.(user.UnknownUserError)
	if ok {
		*target = u
	}
	return ok
}
