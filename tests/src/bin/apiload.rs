//! Load generator for bench/api.sh: N concurrent users, each on its own keep-alive HTTP/1.1
//! connection with its own bearer token, cycling through list folder, stat, small upload and
//! small download for a bounded time. Prints p50/p99/max per endpoint.
//!
//!   apiload PORT SECONDS TOKENS_FILE     (one `user token` per line)
//!
//! `APILOAD_OPS=2` (a comma-separated subset of 0 list, 1 stat, 2 upload, 3 download) runs only
//! those operations, to measure one in isolation.
//!
//! By default each user sends its next request as soon as the last is answered (a closed loop
//! with no think time: the server is saturated, and latency is mostly waiting in line).
//! `APILOAD_RATE=R` paces each user at R requests per second instead (users start at spread-out
//! instants). A request's latency then counts from when it was due, not from when it was sent,
//! so a server that falls behind is charged for the wait (no coordinated omission).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn request(conn: &mut BufReader<TcpStream>, head: &str, body: &[u8]) -> u16 {
    let s = conn.get_mut();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap();
        }
    }
    let mut buf = vec![0u8; len];
    conn.read_exact(&mut buf).unwrap();
    status
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args[1].parse().unwrap();
    let secs: u64 = args[2].parse().unwrap();
    let users: Vec<(String, String)> = std::fs::read_to_string(&args[3])
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(u, t)| (u.to_owned(), t.to_owned())))
        .collect();
    let names = ["list folder", "stat", "small upload (4 KiB)", "small download (4 KiB)"];
    let ops: Vec<usize> = std::env::var("APILOAD_OPS")
        .map(|v| v.split(',').map(|o| o.trim().parse().expect("APILOAD_OPS: numbers 0-3")).collect())
        .unwrap_or_else(|_| vec![0, 1, 2, 3]);
    let rate: Option<f64> =
        std::env::var("APILOAD_RATE").ok().map(|r| r.parse().expect("APILOAD_RATE: requests/s per user"));
    let n_users = users.len();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let handles: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, (_user, token))| {
            let ops = ops.clone();
            std::thread::spawn(move || {
                let mut conn = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
                conn.get_ref().set_nodelay(true).unwrap();
                let mut lat: Vec<Vec<u32>> = vec![Vec::new(); 4];
                let mut errors = 0u64;
                let body = vec![b'x'; 4096];
                let mut n = 0usize;
                while Instant::now() < deadline {
                    // Each user starts at another point of the cycle, so that the operations
                    // are mixed at every instant rather than every user uploading at once.
                    let op = ops[(n + i) % ops.len()];
                    let k = ((n + i) / ops.len()) % 20;
                    let auth = format!("Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n");
                    let head = match op {
                        0 => format!("GET /api/v1/files?path=/bench HTTP/1.1\r\n{auth}\r\n"),
                        1 => format!("GET /api/v1/stat?path=/bench/f{k} HTTP/1.1\r\n{auth}\r\n"),
                        2 => format!(
                            "PUT /api/v1/content?path=/bench/up{i}-{k} HTTP/1.1\r\n{auth}Content-Length: {}\r\n\r\n",
                            body.len()
                        ),
                        _ => format!("GET /api/v1/content?path=/bench/f{k} HTTP/1.1\r\n{auth}\r\n"),
                    };
                    // When this request is due: now (closed loop), or on the user's schedule.
                    let t = match rate {
                        None => Instant::now(),
                        Some(r) => {
                            let offset = (i as f64 / n_users as f64 + n as f64) / r;
                            let due = start + Duration::from_secs_f64(offset);
                            if due >= deadline {
                                break;
                            }
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                            due
                        }
                    };
                    let status = request(&mut conn, &head, if op == 2 { &body } else { &[] });
                    lat[op].push(t.elapsed().as_micros() as u32);
                    if !(200..300).contains(&status) {
                        errors += 1;
                    }
                    n += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all: Vec<Vec<u32>> = vec![Vec::new(); 4];
    let mut errors = 0;
    for h in handles {
        let (lat, e) = h.join().unwrap();
        for (a, l) in all.iter_mut().zip(lat) {
            a.extend(l);
        }
        errors += e;
    }
    match rate {
        None => println!("closed loop: {n_users} users, each sending as soon as answered, {secs} s"),
        Some(r) => println!(
            "paced: {n_users} users at {r} requests/s each ({:.0} requests/s offered), {secs} s",
            r * n_users as f64
        ),
    }
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "endpoint", "requests", "p50 ms", "p99 ms", "max ms", "10ms/p99"
    );
    let total: usize = all.iter().map(Vec::len).sum();
    let total_us: u64 = all.iter().flatten().map(|&v| v as u64).sum();
    for (name, mut l) in names.iter().zip(all) {
        if l.is_empty() {
            continue;
        }
        l.sort_unstable();
        let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)] as f64 / 1000.0;
        let p99 = pct(0.99);
        println!(
            "{name:<24} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2}x",
            l.len(),
            pct(0.5),
            p99,
            *l.last().unwrap() as f64 / 1000.0,
            10.0 / p99
        );
    }
    println!("non-2xx answers: {errors}");
    let elapsed = start.elapsed().as_secs_f64();
    let mean_ms = total_us as f64 / total.max(1) as f64 / 1000.0;
    println!(
        "requests: {total} in {elapsed:.1} s ({:.0}/s), mean latency {mean_ms:.2} ms",
        total as f64 / elapsed
    );
    // The load generator's own CPU, for bench/api.sh's accounting (Linux reports it in 1/100 s).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 =
        fields.get(11..13).map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum()).unwrap_or(0);
    println!("load generator cpu ticks: {ticks}");
}
