//go:build !linux

package snapshot

import v1 "github.com/google/go-containerregistry/pkg/v1"

// Remove deletes the unpacked layer diffID (Linux only).
func (s *Snapshotter) Remove(v1.Hash) error { return errUnsupported }

// List returns every layer unpacked here (Linux only).
func (s *Snapshotter) List() ([]*Layer, error) { return nil, errUnsupported }
