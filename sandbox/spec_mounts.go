package sandbox

// Mount types for Spec.Mounts.
const (
	MountBind  = "bind"
	MountTmpfs = "tmpfs"
)

// Mount is an extra mount inside the rootfs for the command (RUN --mount). Its mountpoint is created only
// when missing and removed again afterwards, as for /etc/hosts, so it never reaches the rootfs's layer.
type Mount struct {
	Type     string // MountBind or MountTmpfs
	Source   string // MountBind: the host path (directory or file)
	Target   string // absolute path inside the rootfs
	ReadOnly bool
	Data     string // MountTmpfs: mount data such as "size=65536k"
}
