//go:build !linux

package snapshot

import (
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var errUnsupported = errors.New("snapshot: overlay snapshots need Linux")

func newSnapshotter(string) (*Snapshotter, error)               { return nil, errUnsupported }
func (s *Snapshotter) get(v1.Hash) (*Layer, error)              { return nil, errUnsupported }
func (s *Snapshotter) unpack(io.Reader) (*Layer, error)         { return nil, errUnsupported }
func (s *Snapshotter) prepare([]v1.Hash, bool) (*Active, error) { return nil, errUnsupported }
func (a *Active) commit() (*Layer, error)                       { return nil, errUnsupported }
func (a *Active) discard() error                                { return errUnsupported }
func extract(string, string, io.Reader) error                   { return errUnsupported }
