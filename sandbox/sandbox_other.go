//go:build !linux

package sandbox

import (
	"context"
	"errors"
)

func run(context.Context, Spec) (int, error) {
	return -1, errors.New("sandbox: only supported on Linux")
}

func initMain() {}
