//! The io_uring trial: how much CPU per message the system-call mechanism itself costs a
//! pipelined WebSocket client, epoll against io_uring, with everything else stripped away.
//!
//! Both modes run the same minimal closed-loop client on one thread: N connections to a
//! WebSocket echo server, K masked 32-byte binary frames in flight on each, every echo answered
//! by a new frame. `epoll` waits with `epoll_wait` and then reads and writes each ready socket
//! (`read` until `EAGAIN`, one `write` per batch); `uring` keeps one receive in flight per
//! connection and submits every send and receive of a turn with one `io_uring_enter`. Neither
//! parses more than frame lengths or records latency: the difference between the two is the most
//! an io_uring transport could save the real client (`--engine zero-alloc`) per message.
//!
//! ```sh
//! cargo run --release -p wsbench-loadgen --example uring_trial -- ADDR epoll|uring [CONNECTIONS] [IN_FLIGHT] [SECONDS]
//! ```
//!
//! Prints one line: mode, messages per second, and the thread's CPU per message in µs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

const PAYLOAD: usize = 32;
/// A client frame: 2 header bytes, 4 of mask key, the payload.
const FRAME: usize = 6 + PAYLOAD;
/// The server's echo: 2 header bytes, the payload.
const ECHO: usize = 2 + PAYLOAD;
const READ_BUF: usize = 64 << 10;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: uring_trial ADDR epoll|uring [CONNECTIONS] [IN_FLIGHT] [SECONDS]";
    let addr = args.first().expect(usage).clone();
    let mode = args.get(1).expect(usage).clone();
    let conns: usize = args.get(2).map_or(100, |v| v.parse().expect(usage));
    let in_flight: usize = args.get(3).map_or(16, |v| v.parse().expect(usage));
    let secs: u64 = args.get(4).map_or(3, |v| v.parse().expect(usage));

    let streams: Vec<TcpStream> = (0..conns).map(|_| open(&addr)).collect();
    // Enough frames for the largest batch: every message of a connection answered at once.
    let frames = frame_row(in_flight.max(READ_BUF / ECHO + 1));
    let run = Duration::from_secs(secs);
    let (messages, cpu_ns, wall) = match mode.as_str() {
        "epoll" => run_epoll(&streams, &frames, in_flight, run),
        "uring" => run_uring(&streams, &frames, in_flight, run),
        _ => panic!("{usage}"),
    };
    let per_s = messages as f64 / wall.as_secs_f64();
    println!("{mode} connections {conns} in_flight {in_flight}: {per_s:.0} msgs/s, {:.3} us CPU per message", cpu_ns as f64 / 1e3 / messages as f64);
}

/// Connects and upgrades; the socket is non-blocking afterwards.
fn open(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    s.write_all(req.as_bytes()).expect("handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so nothing after the head is taken: the server sends nothing more unasked.
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("handshake response");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "not upgraded: {}", String::from_utf8_lossy(&head));
    s.set_nonblocking(true).expect("nonblocking");
    s
}

/// `n` masked binary frames back to back (one mask key: the trial measures system calls).
fn frame_row(n: usize) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut one = vec![0x82, 0x80 | PAYLOAD as u8];
    one.extend_from_slice(&key);
    one.extend((0..PAYLOAD).map(|i| (i as u8) ^ key[i % 4]));
    one.repeat(n)
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and a writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Per connection: bytes of a partial echo carried over, messages owed (echoes received, their
/// replacements not yet written).
#[derive(Clone, Copy, Default)]
struct Conn {
    partial: usize,
    owed: usize,
}

impl Conn {
    /// Counts the whole echoes in `n` new bytes; they are owed replacements.
    fn received(&mut self, n: usize) -> usize {
        let total = self.partial + n;
        self.partial = total % ECHO;
        self.owed += total / ECHO;
        total / ECHO
    }
}

fn run_epoll(streams: &[TcpStream], frames: &[u8], in_flight: usize, run: Duration) -> (u64, u64, Duration) {
    // SAFETY: plain system calls on descriptors this function's caller keeps open.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    for (i, s) in streams.iter().enumerate() {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: i as u64 };
        assert_eq!(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) }, 0);
    }
    let mut conns = vec![Conn { owed: in_flight, ..Conn::default() }; streams.len()];
    let mut buf = vec![0u8; READ_BUF];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let (mut messages, t0, c0) = (0u64, Instant::now(), thread_cpu_ns());
    for (i, s) in streams.iter().enumerate() {
        write_owed(s, &mut conns[i], frames);
    }
    while t0.elapsed() < run {
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 100) };
        for ev in &events[..n.max(0) as usize] {
            let i = ev.u64 as usize;
            let mut s = &streams[i];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => panic!("server closed connection {i}"),
                    Ok(n) => messages += conns[i].received(n) as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            write_owed(s, &mut conns[i], frames);
        }
    }
    (messages, thread_cpu_ns() - c0, t0.elapsed())
}

/// Writes the frames owed in one `write` (a loopback socket takes them whole).
fn write_owed(mut s: &TcpStream, c: &mut Conn, frames: &[u8]) {
    if c.owed > 0 {
        let n = s.write(&frames[..c.owed * FRAME]).expect("write");
        assert_eq!(n % FRAME, 0, "a short write of a partial frame; the trial does not resume those");
        c.owed -= n / FRAME;
    }
}

fn run_uring(streams: &[TcpStream], frames: &[u8], in_flight: usize, run: Duration) -> (u64, u64, Duration) {
    let n = streams.len();
    let mut ring = IoUring::new((2 * n).next_power_of_two() as u32).expect("io_uring_setup (the kernel or a seccomp policy may refuse io_uring)");
    let mut conns = vec![Conn::default(); n];
    let mut bufs = vec![0u8; n * READ_BUF];
    // user_data: connection index, high bit set for a send.
    const SEND: u64 = 1 << 63;
    let push = |ring: &mut IoUring, e: io_uring::squeue::Entry| {
        // SAFETY: every buffer an entry points to outlives the ring's use of it (owned here).
        while unsafe { ring.submission().push(&e) }.is_err() {
            ring.submit().expect("submit");
        }
    };
    let (mut messages, t0, c0) = (0u64, Instant::now(), thread_cpu_ns());
    for (i, s) in streams.iter().enumerate() {
        let fd = types::Fd(s.as_raw_fd());
        let b = bufs[i * READ_BUF..].as_mut_ptr();
        push(&mut ring, opcode::Recv::new(fd, b, READ_BUF as u32).build().user_data(i as u64));
        push(&mut ring, opcode::Send::new(fd, frames.as_ptr(), (in_flight * FRAME) as u32).build().user_data(i as u64 | SEND));
    }
    let mut done = Vec::with_capacity(2 * n);
    while t0.elapsed() < run {
        ring.submit_and_wait(1).expect("io_uring_enter");
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(data, res) in &done {
            let i = (data & !SEND) as usize;
            let fd = types::Fd(streams[i].as_raw_fd());
            assert!(res > 0, "connection {i}: {}", if res == 0 { "closed".to_string() } else { std::io::Error::from_raw_os_error(-res).to_string() });
            if data & SEND != 0 {
                assert_eq!(res as usize % FRAME, 0, "a short send of a partial frame; the trial does not resume those");
                continue;
            }
            let k = conns[i].received(res as usize);
            messages += k as u64;
            conns[i].owed = 0;
            if k > 0 {
                push(&mut ring, opcode::Send::new(fd, frames.as_ptr(), (k * FRAME) as u32).build().user_data(i as u64 | SEND));
            }
            let b = bufs[i * READ_BUF..].as_mut_ptr();
            push(&mut ring, opcode::Recv::new(fd, b, READ_BUF as u32).build().user_data(i as u64));
        }
    }
    (messages, thread_cpu_ns() - c0, t0.elapsed())
}
