// Package etcdtest runs real etcd servers inside the test binary so that
// packages built on etcd can be tested against the genuine consensus,
// compaction and error behaviour rather than a fake that drifts from it.
//
// Members serve clients on 127.0.0.1 TCP ports and also on unix socket
// files. The sockets exist because dialgate daemons under test run inside
// `ip netns exec`, where the host's loopback is a different interface;
// a socket file is reached through the shared filesystem instead, so it
// crosses network namespaces.
//
// Unix endpoints are spelled "unix:///abs/path/etcd.sock" (or "unixs://"
// with TLS) both in embed.Config.ListenClientUrls and in
// clientv3.Config.Endpoints. The triple slash matters: with two slashes
// the client treats the remainder as a path relative to the working
// directory. etcd refuses unix URLs in AdvertiseClientUrls (it demands a
// host:port), so members advertise only their TCP URLs.
//
// Every socket file is named "etcd.sock" in its own short directory under
// os.TempDir: the kernel limits socket paths to 107 bytes, which
// t.TempDir paths easily exceed, and the client uses the socket's base
// name as the TLS server name, so a single fixed name lets one
// certificate SAN cover every socket.
//
// A Cable stands between one client and the cluster so a test can cut a
// single node off from etcd while etcd itself keeps running.
package etcdtest
