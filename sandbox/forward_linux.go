package sandbox

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The published ports (-p) are the NAT of the design notes, in user space: the monitor listens on the
// host (in its own network namespace, the host's) and, for each connection, dials the container's port on
// the container's loopback from inside the container's network namespace. The dialing socket is created by a
// thread that setns'ed into that namespace for the socket(2) call only; a socket belongs to the namespace it
// was created in, so the connection stays there whatever thread serves it next. Two containers can both
// listen on 5000 inside and be published as 8080 and 8081: each has its own namespace and its own monitor.
//
// Listening before the container starts makes a taken port an error of `run` (exit 125), as in docker.

type forwarder struct {
	ports     []PortMapping
	listeners []net.Listener
	netns     int // the container's network namespace (-1: dial in ours, --network host)
	hostns    int // ours, to return to after a dial
	wg        sync.WaitGroup
	once      sync.Once
}

func listenPorts(ports []PortMapping) (*forwarder, error) {
	f := &forwarder{ports: ports, netns: -1, hostns: -1}
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)))
		if err != nil {
			f.close()
			return nil, fmt.Errorf("publish port %s: %w", p, err)
		}
		f.listeners = append(f.listeners, l)
	}
	return f, nil
}

// start serves the listeners, dialing into the network namespace of the sandbox whose init is initPid.
func (f *forwarder) start(initPid int, ownNet bool) error {
	if len(f.listeners) == 0 {
		return nil
	}
	if ownNet {
		ns, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", initPid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open the container's network namespace: %w", err)
		}
		host, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(ns)
			return fmt.Errorf("open our network namespace: %w", err)
		}
		f.netns, f.hostns = ns, host
	}
	for i, l := range f.listeners {
		target := net.JoinHostPort("127.0.0.1", strconv.Itoa(f.ports[i].ContainerPort))
		f.wg.Add(1)
		go f.serve(l, target)
	}
	return nil
}

func (f *forwarder) serve(l net.Listener, target string) {
	defer f.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		go f.proxy(c, target)
	}
}

func (f *forwarder) proxy(in net.Conn, target string) {
	defer in.Close()
	out, err := f.dial(target)
	if err != nil {
		return // the client sees the connection closed, as with docker-proxy
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

// dial connects to target from inside the container's network namespace.
func (f *forwarder) dial(target string) (net.Conn, error) {
	if f.netns < 0 {
		return net.DialTimeout("tcp", target, 10*time.Second)
	}
	runtime.LockOSThread()
	if err := unix.Setns(f.netns, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns: %w", err)
	}
	c, err := net.DialTimeout("tcp", target, 10*time.Second)
	if unix.Setns(f.hostns, unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	} // else the thread stays locked and the runtime ends it with this goroutine: it never serves another
	return c, err
}

// close stops listening; connections in progress end with their peers or the container.
func (f *forwarder) close() {
	f.once.Do(func() {
		for _, l := range f.listeners {
			l.Close()
		}
		f.wg.Wait()
		if f.netns >= 0 {
			unix.Close(f.netns)
			unix.Close(f.hostns)
		}
	})
}
