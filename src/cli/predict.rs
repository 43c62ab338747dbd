//! `adapter-studio predict` and `adapter-studio info`.
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use adapter_studio::adapter_model::AdapterModel;
use adapter_studio::adapters::Setup;
use adapter_studio::bundle;
use adapter_studio::data::{DataSource, FileFormat};
use adapter_studio::device::parse_device;
use adapter_studio::model::BaseModel;
use adapter_studio::predict::{self, Input, PredictSpec};

/// The model to run: base, adapters, fusion, head and device (`predict` and `eval`), or a bundle.
#[derive(Args)]
pub struct ModelArgs {
    /// Hugging Face model folder (config.json, weights, tokenizer), `demo`, or a Hub id
    /// (`owner/name[@revision]`, downloaded into the Hugging Face cache if missing).
    #[arg(long, required_unless_present = "bundle")]
    model: Option<PathBuf>,
    /// AdapterHub adapter folder or Hub id; repeat for several (stacked in order unless
    /// --fusion).
    #[arg(long = "adapter")]
    adapters: Vec<PathBuf>,
    /// AdapterHub fusion folder or Hub id; all of its adapters must be given with --adapter.
    #[arg(long)]
    fusion: Option<PathBuf>,
    /// AdapterHub head folder or Hub id (its labels define the classes).
    #[arg(long, required_unless_present = "bundle")]
    head: Option<PathBuf>,
    /// A bundle written by `export --format bundle` (instead of the four options above);
    /// every file is checked against its manifest first.
    #[arg(long, conflicts_with_all = ["model", "adapters", "fusion", "head"])]
    bundle: Option<PathBuf>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// The adapter setup in the Python library's notation, instead of the Stack of the
    /// adapters (or Fuse with --fusion): e.g. `Stack(a, Fuse(b, c))`, `Parallel(a, b)`,
    /// `Average(a, b, weights=[0.3, 0.7])`, `BatchSplit(a, b, batch_sizes=[1, 2])`,
    /// `Split(a, b, splits=[4, 60])`. Names are the adapters' own (given with --adapter or in
    /// the bundle); a Fuse needs the fusion of exactly its adapters.
    #[arg(long, value_name = "EXPR")]
    setup: Option<String>,
}

impl ModelArgs {
    /// The parts given as separate folders (None with --bundle); Hub ids among them become
    /// their cache folders (downloaded if missing).
    pub fn spec(&self) -> anyhow::Result<Option<PredictSpec>> {
        let (Some(model), Some(head)) = (&self.model, &self.head) else {
            return Ok(None);
        };
        let mut adapters = self.adapters.clone();
        super::hub::folders(&mut adapters)?;
        let mut fusion = self.fusion.clone();
        super::hub::folder_opt(&mut fusion)?;
        Ok(Some(PredictSpec {
            device: parse_device(&self.device)?,
            model: super::hub::folder(model)?,
            adapters,
            fusion,
            head: super::hub::folder(head)?,
        }))
    }

    pub fn load(&self) -> anyhow::Result<AdapterModel> {
        // A wrong --setup is told before anything loads.
        let setup = parse_setup(self.setup.as_deref())?;
        let mut model = match &self.bundle {
            Some(dir) => bundle::load(dir, parse_device(&self.device)?)?,
            None => {
                let spec = self
                    .spec()?
                    .ok_or_else(|| anyhow::anyhow!("give --model and --head, or --bundle"))?;
                predict::load(&spec)?
            }
        };
        if let Some(setup) = setup {
            model
                .set_setup(Some(setup))
                .map_err(|e| anyhow::anyhow!("--setup: {e}"))?;
        }
        Ok(model)
    }
}

/// `--setup EXPR` read in the library's notation and checked as the library nests blocks;
/// errors name the flag (and the column of a syntax error).
pub fn parse_setup(expr: Option<&str>) -> anyhow::Result<Option<Setup>> {
    let Some(expr) = expr else {
        return Ok(None);
    };
    let setup = expr
        .parse::<Setup>()
        .and_then(|s| s.validate().map(|()| s))
        .map_err(|err| anyhow::anyhow!("--setup: {err}"))?;
    Ok(Some(setup))
}

#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Input text; repeat for several.
    #[arg(long = "text")]
    texts: Vec<String>,
    /// Input file: one text per line (text<TAB>text_pair for pairs); or a table (.csv,
    /// .jsonl/.ndjson/.json, or .tsv with --text-column) read by column.
    #[arg(long)]
    input: Option<PathBuf>,
    /// The column of the texts in a table input (default: `text`).
    #[arg(long)]
    text_column: Option<String>,
    /// The column of the text pairs in a table input.
    #[arg(long)]
    text_pair_column: Option<String>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// One JSON prediction per line, in input order, printed as each window of batches is
    /// done (a file of any length can be piped through); wins over --json.
    #[arg(long)]
    jsonl: bool,
    /// Write the output to this file instead of stdout; it appears, whole, when all is done.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Texts per forward pass (sorted by length within a window of batches).
    #[arg(long, default_value_t = predict::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// No progress bar (there is none when stderr is not a terminal either).
    #[arg(long)]
    quiet: bool,
}

/// Where the output goes: stdout, or a temporary file renamed into place at the end.
struct Sink {
    out: Box<dyn Write>,
    file: Option<(PathBuf, PathBuf)>,
}

impl Sink {
    fn open(output: Option<&Path>) -> anyhow::Result<Self> {
        let Some(dst) = output else {
            return Ok(Sink {
                out: Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                file: None,
            });
        };
        let tmp = adapter_studio::io::atomic::temp_path_for(dst);
        let f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Sink {
            out: Box::new(std::io::BufWriter::new(f)),
            file: Some((tmp, dst.to_path_buf())),
        })
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        self.out = Box::new(std::io::sink()); // closes the file
        if let Some((tmp, dst)) = self.file.take() {
            std::fs::rename(&tmp, &dst).with_context(|| format!("writing {}", dst.display()))?;
        }
        Ok(())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Not finished (an error): no half-written output file.
        if let Some((tmp, _)) = &self.file {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Form {
    Text,
    Json,
    Jsonl,
}

/// Allocations of 1 MiB and more straight from the kernel (and back to it when freed). Batches
/// of changing shapes otherwise fragment glibc's heap so that the resident size grows with the
/// input's length: 3,000 lines took 1,225 MiB by default and 788 MiB with this (1,000 lines:
/// 812 and 627 MiB); a 64 KiB threshold saved no more.
fn bound_heap_growth() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator threshold; it is called before the model loads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    bound_heap_growth();
    let given: Vec<Input> = args.texts.iter().map(|t| (t.clone(), None)).collect();
    // The total is only for the progress bar: a piped corpus is not read twice.
    let show_bar = !args.quiet && std::io::stderr().is_terminal();
    let (from_file, total): (
        Box<dyn Iterator<Item = adapter_studio::Result<Input>>>,
        usize,
    ) = match &args.input {
        None => (Box::new(std::iter::empty()), 0),
        Some(input) => {
            // A table: any dataset file, folder or split, except that a `.tsv` file is read a
            // line a text (`text<TAB>pair`) unless a column is named.
            let source = DataSource::parse(input);
            let table = source.split().is_some()
                || input.is_dir()
                || match FileFormat::of_path(input) {
                    Some(FileFormat::Tsv) => args.text_column.is_some(),
                    Some(_) => true,
                    None => false,
                };
            if table {
                let rows = predict::input_table(
                    &source,
                    args.text_column.as_deref().unwrap_or("text"),
                    args.text_pair_column.as_deref(),
                )?;
                let n = rows.len();
                (Box::new(rows.into_iter().map(Ok)), n)
            } else {
                if args.text_column.is_some() || args.text_pair_column.is_some() {
                    anyhow::bail!(
                        "{}: --text-column needs a table input ({} files, or a dataset folder)",
                        input.display(),
                        FileFormat::list_wording(&FileFormat::ALL)
                    );
                }
                let n = if show_bar { count_lines(input)? } else { 0 };
                (Box::new(predict::input_lines(input)?), n)
            }
        }
    };
    let total = total + given.len();
    let mut inputs = given.into_iter().map(Ok).chain(from_file).peekable();
    if inputs.peek().is_none() {
        anyhow::bail!("no input texts (give --text or --input)");
    }
    let form = match (args.jsonl, args.json) {
        (true, _) => Form::Jsonl,
        (_, true) => Form::Json,
        _ => Form::Text,
    };
    let model = args.model.load()?;
    let bar = if !show_bar {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} lines · {per_sec} · ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    };
    let mut sink = Sink::open(args.output.as_deref())?;
    if form == Form::Json {
        sink.out.write_all(b"{\"predictions\":[")?;
    }
    let mut first = true;
    predict::predict_stream(&model, inputs, args.batch_size, &mut |p| {
        write_prediction(&mut sink.out, form, &p, first)
            .map_err(|e| adapter_studio::Error::Invalid(format!("writing the output: {e}")))?;
        first = false;
        bar.inc(1);
        if form == Form::Jsonl {
            // Each window reaches a pipe as soon as it is done.
            let _ = sink.out.flush();
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if form == Form::Json {
        sink.out.write_all(b"]}\n")?;
    }
    sink.finish()
}

/// Non-blank lines of `path`, for the progress bar's total.
fn count_lines(path: &Path) -> anyhow::Result<usize> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut n = 0;
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        n += usize::from(!line.iter().all(u8::is_ascii_whitespace));
    }
    Ok(n)
}

fn write_prediction(
    out: &mut dyn Write,
    form: Form,
    p: &predict::Prediction,
    first: bool,
) -> std::io::Result<()> {
    match form {
        Form::Json => {
            if !first {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, p)?;
        }
        Form::Jsonl => {
            serde_json::to_writer(&mut *out, p)?;
            out.write_all(b"\n")?;
        }
        Form::Text => {
            let text = match &p.text_pair {
                Some(pair) => format!("{} ‖ {}", p.text, pair),
                None => p.text.clone(),
            };
            writeln!(out, "{text}")?;
            let label_text = |label: &serde_json::Value| match label {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match &p.channels {
                // Parallel: a label and probabilities per channel.
                Some(channels) => {
                    for (c, name) in channels.iter().enumerate() {
                        writeln!(out, "  [{name}]")?;
                        writeln!(out, "    label:         {}", label_text(&p.label[c]))?;
                        writeln!(
                            out,
                            "    probabilities: {}",
                            fmt_numbers(&p.probabilities[c])
                        )?;
                    }
                }
                None => {
                    writeln!(out, "  label:         {}", label_text(&p.label))?;
                    writeln!(out, "  probabilities: {}", fmt_numbers(&p.probabilities))?;
                }
            }
            if let Some(fa) = &p.fusion_attention {
                writeln!(
                    out,
                    "  fusion attention (mean over tokens) — {}",
                    p.fusion_adapters.join(" | ")
                )?;
                for (l, row) in fa.iter().enumerate() {
                    let cells: Vec<String> = row.iter().map(|x| format!("{x:.3}")).collect();
                    writeln!(out, "    layer {l:>2}: {}", cells.join("  "))?;
                }
            }
        }
    }
    Ok(())
}

fn fmt_numbers(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(fmt_numbers).collect();
            format!("[{}]", inner.join(", "))
        }
        serde_json::Value::Number(n) => format!("{:.4}", n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string(),
    }
}

#[derive(Args)]
pub struct InfoArgs {
    #[arg(long)]
    model: PathBuf,
}

pub fn info(mut args: InfoArgs) -> anyhow::Result<()> {
    args.model = super::hub::folder(&args.model)?;
    let model = BaseModel::load(&args.model, tch::Device::Cpu)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let c = &model.config;
    println!("architecture:  {}", c.arch.model_type());
    println!("layers:        {}", c.num_layers);
    println!("hidden size:   {}", c.hidden_size);
    println!("heads:         {}", c.num_heads);
    println!("parameters:    {}", model.num_parameters());
    println!("max length:    {}", model.tokenizer.max_length);
    Ok(())
}
