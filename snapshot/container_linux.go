package snapshot

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ContainerLowers returns the lower dirs of a container's rootfs over parents (lowest layer first), topmost
// first as overlayfs wants them, with the mountpoint stubs of PrepareForRun at the bottom. The container
// keeps its own upper and work dirs (they outlive this process), so it mounts them with MountOverlay.
func (s *Snapshotter) ContainerLowers(parents []v1.Hash) ([]string, error) {
	var lowers []string
	for i := len(parents) - 1; i >= 0; i-- {
		l, err := s.get(parents[i])
		if err != nil {
			return nil, fmt.Errorf("snapshot: container: %w", err)
		}
		if !l.Empty {
			lowers = append(lowers, l.Dir)
		}
	}
	mp, err := s.mountpointsLayer()
	if err != nil {
		return nil, fmt.Errorf("snapshot: container: %w", err)
	}
	return append(lowers, mp), nil
}

// MountOverlay mounts a writable overlay of lowers (topmost first) with upper and work at target, nodev, with
// the options of Prepare. Those include "volatile": once a mount ends uncleanly, the upper dir must not be
// mounted again before work/incompat is removed (a container's upper dir is never mounted twice for now).
func MountOverlay(lowers []string, upper, work, target string) error {
	if len(lowers) == 0 {
		return fmt.Errorf("snapshot: overlay at %s: no lower dir", target)
	}
	if err := mountOverlay(lowers, upper, work, target); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}
