//! Word and line count over a file far larger than what is kept in memory:
//! the file is read in blocks of about 1 MB (cut at a line end) that are
//! streamed through `imap`, so only a few blocks exist at any time, on every
//! backend; the workers count, the caller only reads and adds up.
//!
//! ```text
//! cargo run --release --example stream                    # generates 300 MB, counts it on every backend
//! cargo run --release --example stream -- --megabytes 20 --backend processes --workers 2
//! cargo run --release --example stream -- --file big.txt  # count a file of your own
//! ```
//!
//! Flags: `--megabytes N` (size of the generated file, default 300),
//! `--file PATH` (count this file instead; it is not deleted), `--backend
//! NAME` (default: serial, threads and processes), `--workers N` (default:
//! the CPUs available). A progress bar is drawn on stderr when it is a
//! terminal. The table ends with the peak resident memory of this process
//! (Linux), to compare with the size of the file.

mod support;

use parpool::{BackendKind, Pool};
use serde_bytes::ByteBuf;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

struct Options {
    megabytes: u64,
    file: Option<PathBuf>,
    backends: Vec<BackendKind>,
    workers: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        megabytes: 300,
        file: None,
        backends: BackendKind::AVAILABLE
            .iter()
            .copied()
            .filter(|kind| kind.name() != "mpi")
            .collect(),
        workers: parpool::cpus::available().count(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--megabytes" => options.megabytes = support::number(&flag, args.next())?,
            "--file" => {
                options.file = Some(PathBuf::from(args.next().ok_or("--file needs a path")?));
            }
            "--backend" => {
                let name = args.next().ok_or("--backend needs a name")?;
                options.backends = vec![name.parse().map_err(|e: parpool::Error| e.to_string())?];
            }
            "--workers" => options.workers = support::number(&flag, args.next())?,
            other => {
                return Err(format!(
                    "unknown flag {other:?}; see the top of examples/stream.rs"
                ));
            }
        }
    }
    if options.megabytes == 0 || options.workers == 0 {
        return Err("--megabytes and --workers must be at least 1".into());
    }
    Ok(options)
}

/// Lines, words and bytes of a block, or summed over the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Counts {
    lines: u64,
    words: u64,
    bytes: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.lines += other.lines;
        self.words += other.words;
        self.bytes += other.bytes;
    }
}

/// The task: lines and words (runs of non-whitespace, as `wc` counts them)
/// of one block of whole lines.
fn count_block(block: ByteBuf) -> Counts {
    let mut counts = Counts {
        bytes: block.len() as u64,
        ..Counts::default()
    };
    let mut in_word = false;
    for &byte in block.iter() {
        counts.lines += u64::from(byte == b'\n');
        let space = byte.is_ascii_whitespace();
        counts.words += u64::from(!space && !in_word);
        in_word = !space;
    }
    counts
}

/// The file as blocks of about `BLOCK` bytes, each ending at a line end
/// (the last one wherever the file ends). A read error ends the stream;
/// the byte count is checked against the file's size afterwards.
fn blocks(path: &PathBuf) -> std::io::Result<impl Iterator<Item = ByteBuf>> {
    const BLOCK: usize = 1 << 20;
    let mut file = File::open(path)?;
    let mut carry: Vec<u8> = Vec::new();
    let mut done = false;
    Ok(std::iter::from_fn(move || {
        while !done {
            let mut block = std::mem::take(&mut carry);
            let start = block.len();
            block.resize(start + BLOCK, 0);
            let read = file.read(&mut block[start..]).unwrap_or(0);
            block.truncate(start + read);
            if read == 0 {
                done = true;
                return (!block.is_empty()).then(|| ByteBuf::from(block));
            }
            if let Some(end) = block.iter().rposition(|&b| b == b'\n') {
                carry = block.split_off(end + 1);
                return Some(ByteBuf::from(block));
            }
            carry = block; // no line end yet: read more
        }
        None
    }))
}

/// Writes about `megabytes` MB of text: lines of 4 to 15 words drawn from
/// a small vocabulary with a fixed-seed generator.
fn generate(path: &PathBuf, megabytes: u64) -> std::io::Result<()> {
    const WORDS: [&str; 16] = [
        "map", "reduce", "chunk", "worker", "pool", "thread", "process", "rank", "stream",
        "result", "item", "task", "queue", "memory", "lazy", "iterator",
    ];
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64: deterministic, fast, good enough for test text.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let target = megabytes * 1_000_000;
    let mut written = 0u64;
    while written < target {
        let words = 4 + next() % 12;
        for w in 0..words {
            let word = WORDS[(next() % WORDS.len() as u64) as usize];
            if w > 0 {
                out.write_all(b" ")?;
                written += 1;
            }
            out.write_all(word.as_bytes())?;
            written += word.len() as u64;
        }
        out.write_all(b"\n")?;
        written += 1;
    }
    out.flush()
}

/// Peak resident memory of this process in bytes (VmHWM; Linux only).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn run(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let (path, generated) = match &options.file {
        Some(path) => (path.clone(), false),
        None => {
            let path =
                std::env::temp_dir().join(format!("parpool-stream-{}.txt", std::process::id()));
            let started = Instant::now();
            generate(&path, options.megabytes)?;
            println!(
                "generated {} ({} MB) in {:.2} s",
                path.display(),
                options.megabytes,
                started.elapsed().as_secs_f64()
            );
            (path, true)
        }
    };
    let result = count_everywhere(&path, options);
    if generated {
        std::fs::remove_file(&path)?;
    }
    result
}

fn count_everywhere(path: &PathBuf, options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let size = std::fs::metadata(path)?.len();
    let megabytes = size as f64 / 1e6;

    // The reference: a plain loop, no pool.
    let started = Instant::now();
    let mut reference = Counts::default();
    for block in blocks(path)? {
        reference += count_block(block);
    }
    let plain_seconds = started.elapsed().as_secs_f64();
    if reference.bytes != size {
        return Err(format!("read {} bytes of a {size}-byte file", reference.bytes).into());
    }

    println!(
        "\n{:<12} {:>7} {:>9} {:>9} {:>12} {:>13}",
        "backend", "workers", "seconds", "MB/s", "lines", "words"
    );
    let row = |name: &str, workers: usize, seconds: f64, counts: &Counts| {
        println!(
            "{name:<12} {workers:>7} {seconds:>9.3} {:>9.1} {:>12} {:>13}",
            megabytes / seconds,
            counts.lines,
            counts.words
        );
    };
    row("plain loop", 1, plain_seconds, &reference);
    for &kind in &options.backends {
        let workers = if kind == BackendKind::Serial {
            1
        } else {
            options.workers
        };
        let pool = Pool::builder()
            .kind(kind)
            .workers(workers)
            .chunk_size(1)
            .progress(true)
            .build()?;
        let started = Instant::now();
        let mut counts = Counts::default();
        for result in pool.imap(count_block, blocks(path)?)? {
            counts += result?;
        }
        let seconds = started.elapsed().as_secs_f64();
        row(kind.name(), workers, seconds, &counts);
        if counts != reference {
            return Err(format!("{kind} counted {counts:?}, the plain loop {reference:?}").into());
        }
    }
    println!("\nevery backend counted the same lines and words as the plain loop");
    if let Some(peak) = peak_rss() {
        println!(
            "peak resident memory of this process: {:.1} MB for a {megabytes:.1} MB file ({:.1}%)",
            peak as f64 / 1e6,
            100.0 * peak as f64 / size as f64
        );
    }
    Ok(())
}

fn main() {
    support::main_with(parse_options, run);
}
