package builder

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ContainerImage is what `layerbuild run` needs of a stored image: its config and the lower dirs of the
// container's rootfs.
type ContainerImage struct {
	Name   string    // the reference as the store resolved it (normalized), or the ID
	ID     string    // image ID (config digest)
	Config v1.Config // Entrypoint, Cmd, Env, User, WorkingDir, StopSignal, ...
	Lowers []string  // unpacked layer dirs, topmost first, mountpoint stubs at the bottom
}

// PrepareContainer looks ref up in the store and unpacks its layers when they are not yet, so that a
// container rootfs can be mounted over them (snapshot.MountOverlay).
func (b *Builder) PrepareContainer(ref string) (*ContainerImage, error) {
	img, err := b.Store.Lookup(ref)
	if err != nil {
		return nil, err
	}
	layers, err := b.imageLayers(img)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	diffIDs := make([]v1.Hash, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.DiffID
	}
	lowers, err := b.Snap.ContainerLowers(diffIDs)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	ci := &ContainerImage{Name: ref, ID: img.ID.String(), Lowers: lowers}
	if len(img.Names) > 0 {
		ci.Name = img.Names[0]
	}
	if img.Config != nil {
		ci.Config = *img.Config.Config.DeepCopy()
	}
	return ci, nil
}
