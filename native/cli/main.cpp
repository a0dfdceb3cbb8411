// megalodon: command line tool of the MEGALODON runtime (info, ingest, generate, perplexity,
// bench). Uses only the public C API.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli_util.h"

namespace {

using cli::Args;
using cli::Clock;
using cli::JsonNumber;
using cli::JsonString;
using cli::UsageError;

constexpr int64_t kMaxThreads = 4096;

const char *const kUsage =
    "usage: megalodon <command> [options]\n"
    "\n"
    "commands:\n"
    "  info MODEL                 print the model's configuration as JSON\n"
    "  ingest MODEL FILE          stream a text file into a state and save it\n"
    "  generate MODEL             generate text from a prompt and/or a saved state\n"
    "  perplexity MODEL FILE      mean negative log-likelihood and perplexity of a text\n"
    "  bench MODEL                ingest and decode speed, state size, peak memory\n"
    "\n"
    "Run 'megalodon <command> --help' for a command's options; 'megalodon --version' for the build.\n";

const char *const kInfoHelp =
    "usage: megalodon info MODEL [--threads N]\n"
    "\n"
    "Prints the model's configuration, parameter counts, tensor types, tokenizer and\n"
    "fingerprint as JSON.\n";

const char *const kIngestHelp =
    "usage: megalodon ingest MODEL FILE --save OUT [--state IN] [--limit N] [--threads N] [--json]\n"
    "\n"
    "Tokenizes FILE (UTF-8 text), streams the tokens through the model and saves the state.\n"
    "  --save OUT     state file to write (atomically)\n"
    "  --state IN     continue from a saved state (default: a fresh state; BOS is prepended)\n"
    "  --limit N      ingest only the first N tokens\n"
    "  --threads N    worker threads (default: all hardware threads)\n"
    "  --json         print {tokens, seconds, tokens_per_second, state_bytes, peak_rss_bytes, ...}\n"
    "Progress goes to stderr.\n";

const char *const kGenerateHelp =
    "usage: megalodon generate MODEL [--state S] [--prompt TEXT] [options] [--json]\n"
    "\n"
    "Feeds the prompt (after the saved state, if any) and streams the generated text to stdout.\n"
    "  --state S            continue a saved state (then --prompt is required)\n"
    "  --prompt TEXT        prompt text; special tokens such as </s> are recognised\n"
    "  --max-tokens N       tokens to generate (default 128)\n"
    "  --temperature T      0 = greedy (default: runtime default)\n"
    "  --top-k K            0 = off\n"
    "  --top-p P            1 = off\n"
    "  --min-p P            0 = off\n"
    "  --repeat-penalty R   1 = off\n"
    "  --repeat-last-n N    window of the repetition penalty\n"
    "  --seed N             sampling seed\n"
    "  --stop STR           stop before STR (repeatable; STR is not printed)\n"
    "  --ignore-eos         keep generating after the end-of-sequence token\n"
    "  --speculative        decode with the model's multi-token heads (greedy output is unchanged;\n"
    "                       sampling keeps its distribution)\n"
    "  --draft K            heads used per speculative step, head 1 included (default: up to all,\n"
    "                       each step's length chosen from measured speed in greedy decoding)\n"
    "  --threads N          worker threads (default: all hardware threads)\n"
    "  --json               print {text, tokens, n_tokens, stop_reason, tokens_per_second, ...} at the end;\n"
    "                       with --speculative also {speculative: {forward_passes, tokens_per_forward, ...}}\n";

const char *const kPerplexityHelp =
    "usage: megalodon perplexity MODEL FILE [--state S] [--limit N] [--threads N] [--json]\n"
    "\n"
    "Scores every token of FILE given the ones before it (and the saved state, if any).\n"
    "  --state S      condition on a saved state (default: a fresh state; BOS is prepended)\n"
    "  --limit N      score only the first N tokens\n"
    "  --threads N    worker threads (default: all hardware threads)\n"
    "  --json         print {tokens, scored, mean_nll, ppl, seconds, tokens_per_second}\n"
    "Progress goes to stderr.\n";

const char *const kBenchHelp =
    "usage: megalodon bench MODEL [--tokens N] [--threads LIST] [--decode-tokens N] [--draft K] [--json]\n"
    "\n"
    "Ingests N random tokens into a fresh state (after a one-chunk warm-up), then decodes greedily,\n"
    "plainly and (for a model with multi-token heads) speculatively, once per thread count, and\n"
    "reports tokens/s, tokens per forward pass, the state size and the peak resident memory.\n"
    "  --tokens N         tokens per ingest run (default 4096)\n"
    "  --threads LIST     comma-separated thread counts (default: 1 and all hardware threads)\n"
    "  --decode-tokens N  tokens generated per decode run (default 32)\n"
    "  --draft K          heads per speculative step, head 1 included (default: up to all, each\n"
    "                     step's length chosen from measured speed)\n"
    "  --json             machine-readable output\n";

void PrintJsonLine(const std::vector<std::pair<std::string, std::string>> &fields) {
    std::string out = "{";
    for (size_t i = 0; i < fields.size(); ++i) {
        if (i) out += ", ";
        out += JsonString(fields[i].first) + ": " + fields[i].second;
    }
    out += "}\n";
    std::fputs(out.c_str(), stdout);
}

std::string JsonInt(int64_t v) { return std::to_string(v); }

std::string IntArrayJson(const int32_t *values, int n) {
    std::string out = "[";
    for (int i = 0; i < n; ++i) {
        if (i) out += ", ";
        out += std::to_string(values[i]);
    }
    return out + "]";
}

// {draft_heads, forward_passes, tokens_per_forward, drafted_per_head, accepted_per_head,
// windows_by_rows}.
std::string SpeculativeJson(const mgl_generate_result &r) {
    const int n = std::max(0, r.draft_heads - 1);
    return "{\"draft_heads\": " + std::to_string(r.draft_heads) + ", \"forward_passes\": " +
           std::to_string(r.forward_passes) + ", \"tokens_per_forward\": " + JsonNumber(r.tokens_per_forward) +
           ", \"drafted_per_head\": " + IntArrayJson(r.drafted, n) + ", \"accepted_per_head\": " +
           IntArrayJson(r.accepted, n) + ", \"windows_by_rows\": " + IntArrayJson(r.windows, std::max(1, r.draft_heads)) +
           "}";
}

struct StatePtrDeleter {
    void operator()(mgl_state *s) const { mgl_state_free(s); }
};
using ClonedState = std::unique_ptr<mgl_state, StatePtrDeleter>;

ClonedState Clone(const mgl_state *state) {
    mgl_state *copy = nullptr;
    cli::Check(mgl_state_clone(state, &copy));
    return ClonedState(copy);
}

std::string TokenArrayJson(const std::vector<int32_t> &tokens) {
    std::string out = "[";
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (i) out += ", ";
        out += std::to_string(tokens[i]);
    }
    return out + "]";
}

int ThreadsOption(const Args &args) { return static_cast<int>(args.get_int("threads", 0, 1, kMaxThreads)); }

// Tokens of a document (the text is released). A fresh state starts with BOS (when the model
// has one); special-token text in documents is left as plain text.
std::vector<int32_t> TokenizeDocument(const cli::Model &model, std::string &&text, bool fresh_state, int64_t limit) {
    std::vector<int32_t> tokens = cli::Tokenize(model, text, fresh_state ? MGL_TOKENIZE_ADD_BOS : 0);
    std::string().swap(text);
    if (limit > 0 && static_cast<int64_t>(tokens.size()) > limit) tokens.resize(static_cast<size_t>(limit));
    return tokens;
}

void RequirePositional(const Args &args, size_t n, const char *what) {
    if (args.positional().size() < n) throw UsageError(std::string("missing ") + what);
    if (args.positional().size() > n) throw UsageError("unexpected argument '" + args.positional()[n] + "'");
}

// ------------------------------------------------------------------------------------------

int CmdInfo(const std::vector<std::string> &argv) {
    Args args(argv, {{"threads", true, false}});
    RequirePositional(args, 1, "MODEL");
    cli::Model model(args.positional()[0], ThreadsOption(args));
    const char *json = mgl_model_info_json(model.get());
    if (json == nullptr) cli::Check(MGL_ERR_INTERNAL);
    std::printf("%s\n", cli::PrettyJson(json).c_str());
    return 0;
}

int CmdIngest(const std::vector<std::string> &argv) {
    Args args(argv, {{"save", true, false}, {"state", true, false}, {"limit", true, false},
                     {"threads", true, false}, {"json", false, false}});
    RequirePositional(args, 2, "MODEL FILE");
    if (!args.has("save")) throw UsageError("missing --save OUT");
    const int64_t limit = args.get_int("limit", 0, 1, INT64_MAX);
    const bool json = args.has("json");

    std::string text = cli::ReadFile(args.positional()[1]);
    cli::Model model(args.positional()[0], ThreadsOption(args));
    cli::State state(model, args.get("state"));

    const Clock::time_point tokenize_start = Clock::now();
    const std::vector<int32_t> tokens = TokenizeDocument(model, std::move(text), !args.has("state"), limit);
    const double tokenize_seconds = cli::SecondsSince(tokenize_start);

    cli::ProgressLine progress("ingest");
    const Clock::time_point start = Clock::now();
    cli::Check(mgl_ingest(model.get(), state.get(), tokens.data(), tokens.size(), &cli::ProgressLine::Callback,
                          &progress));
    const double seconds = cli::SecondsSince(start);
    progress.Finish();

    cli::Check(mgl_state_save(state.get(), args.get("save").c_str()));
    const int64_t state_bytes = mgl_state_size(state.get());
    const int64_t position = mgl_state_position(state.get());
    const double rate = seconds > 0 ? static_cast<double>(tokens.size()) / seconds : 0.0;
    if (json) {
        PrintJsonLine({{"tokens", JsonInt(static_cast<int64_t>(tokens.size()))},
                       {"seconds", JsonNumber(seconds)},
                       {"tokens_per_second", JsonNumber(rate)},
                       {"tokenize_seconds", JsonNumber(tokenize_seconds)},
                       {"position", JsonInt(position)},
                       {"state_bytes", JsonInt(state_bytes)},
                       {"peak_rss_bytes", JsonInt(cli::PeakRssBytes())}});
    } else {
        std::printf("ingested %zu tokens in %.2f s (%.0f tokens/s); state at position %lld saved to %s (%lld bytes)\n",
                    tokens.size(), seconds, rate, static_cast<long long>(position), args.get("save").c_str(),
                    static_cast<long long>(state_bytes));
    }
    return 0;
}

struct GenerateOutput {
    bool stream;
    std::string text;
    std::vector<int32_t> tokens;
};

int OnGeneratedToken(int32_t token, const char *text, size_t text_len, void *user) {
    GenerateOutput *out = static_cast<GenerateOutput *>(user);
    out->tokens.push_back(token);
    out->text.append(text, text_len);
    if (out->stream && text_len > 0) {
        std::fwrite(text, 1, text_len, stdout);
        std::fflush(stdout);
    }
    return 0;
}

int CmdGenerate(const std::vector<std::string> &argv) {
    Args args(argv, {{"state", true, false},         {"prompt", true, false},      {"max-tokens", true, false},
                     {"temperature", true, false},   {"top-k", true, false},       {"top-p", true, false},
                     {"min-p", true, false},         {"repeat-penalty", true, false},
                     {"repeat-last-n", true, false}, {"seed", true, false},        {"stop", true, true},
                     {"ignore-eos", false, false},   {"threads", true, false},     {"json", false, false},
                     {"speculative", false, false},  {"draft", true, false}});
    RequirePositional(args, 1, "MODEL");
    const bool json = args.has("json");
    const bool continue_state = args.has("state");
    if (continue_state && !args.has("prompt"))
        throw UsageError("--prompt is required with --state (a saved state holds no logits to sample from)");

    mgl_generate_params params = mgl_generate_default_params();
    params.max_tokens = static_cast<int32_t>(args.get_int("max-tokens", 128, 0, INT32_MAX));
    mgl_sampling_params &s = params.sampling;
    s.temperature = static_cast<float>(args.get_double("temperature", s.temperature, 0, 100));
    s.top_k = static_cast<int32_t>(args.get_int("top-k", s.top_k, 0, INT32_MAX));
    s.top_p = static_cast<float>(args.get_double("top-p", s.top_p, 0, 1));
    s.min_p = static_cast<float>(args.get_double("min-p", s.min_p, 0, 1));
    s.repeat_penalty = static_cast<float>(args.get_double("repeat-penalty", s.repeat_penalty, 1e-3, 100));
    s.repeat_last_n = static_cast<int32_t>(args.get_int("repeat-last-n", s.repeat_last_n, 0, INT32_MAX));
    if (args.has("seed")) s.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, INT64_MAX));
    std::vector<const char *> stop;
    for (const std::string &str : args.all("stop")) {
        if (str.empty()) throw UsageError("--stop needs a non-empty string");
        stop.push_back(str.c_str());
    }
    params.stop = stop.empty() ? nullptr : stop.data();
    params.n_stop = stop.size();
    params.stop_at_eos = args.has("ignore-eos") ? 0 : 1;
    const bool speculative = args.has("speculative");
    if (args.has("draft") && !speculative) throw UsageError("--draft needs --speculative");
    params.speculative = speculative ? 1 : 0;
    params.draft = static_cast<int32_t>(args.get_int("draft", 0, 0, MGL_MAX_DRAFT_HEADS));

    cli::Model model(args.positional()[0], ThreadsOption(args));
    cli::State state(model, args.get("state"));

    std::vector<int32_t> prompt;
    if (args.has("prompt"))
        prompt = cli::Tokenize(model, args.get("prompt"),
                               MGL_TOKENIZE_PARSE_SPECIAL | (continue_state ? 0 : MGL_TOKENIZE_ADD_BOS));
    if (prompt.empty()) {
        if (model.info().bos_token < 0)
            throw UsageError("--prompt is required: the model has no BOS token to start from");
        prompt.push_back(model.info().bos_token);
    }

    GenerateOutput out{!json, {}, {}};
    mgl_generate_result result{};
    cli::Check(mgl_generate(model.get(), state.get(), prompt.data(), prompt.size(), &params, &OnGeneratedToken, &out,
                            &result));
    static const char *const kStopReasons[] = {"max_tokens", "eos", "stop_string", "cancelled"};
    const int reason = static_cast<int>(result.stop_reason);
    const char *stop_reason = reason >= 0 && reason < 4 ? kStopReasons[reason] : "unknown";
    const double rate = result.generate_seconds > 0 ? result.n_tokens / result.generate_seconds : 0.0;
    if (json) {
        std::vector<std::pair<std::string, std::string>> fields = {
            {"text", JsonString(out.text)},
            {"tokens", TokenArrayJson(out.tokens)},
            {"n_tokens", JsonInt(result.n_tokens)},
            {"stop_reason", JsonString(stop_reason)},
            {"tokens_per_second", JsonNumber(rate)},
            {"prompt_tokens", JsonInt(static_cast<int64_t>(prompt.size()))},
            {"prompt_seconds", JsonNumber(result.prompt_seconds)},
            {"generate_seconds", JsonNumber(result.generate_seconds)}};
        if (speculative) fields.emplace_back("speculative", SpeculativeJson(result));
        PrintJsonLine(fields);
    } else {
        std::printf("\n");
        if (speculative)
            std::fprintf(stderr, "[%d tokens, %.1f tokens/s, %.2f tokens per forward pass, stop: %s]\n",
                         result.n_tokens, rate, result.tokens_per_forward, stop_reason);
        else
            std::fprintf(stderr, "[%d tokens, %.1f tokens/s, stop: %s]\n", result.n_tokens, rate, stop_reason);
    }
    return 0;
}

int CmdPerplexity(const std::vector<std::string> &argv) {
    Args args(argv, {{"state", true, false}, {"limit", true, false}, {"threads", true, false}, {"json", false, false}});
    RequirePositional(args, 2, "MODEL FILE");
    const int64_t limit = args.get_int("limit", 0, 2, INT64_MAX);
    std::string text = cli::ReadFile(args.positional()[1]);
    cli::Model model(args.positional()[0], ThreadsOption(args));
    cli::State state(model, args.get("state"));
    const std::vector<int32_t> tokens = TokenizeDocument(model, std::move(text), !args.has("state"), limit);
    if (tokens.size() < 2) throw UsageError("'" + args.positional()[1] + "' has fewer than 2 tokens to score");

    cli::ProgressLine progress("perplexity");
    double sum_nll = 0;
    int64_t n_scored = 0;
    const Clock::time_point start = Clock::now();
    cli::Check(mgl_score(model.get(), state.get(), tokens.data(), tokens.size(), &sum_nll, &n_scored,
                         &cli::ProgressLine::Callback, &progress));
    const double seconds = cli::SecondsSince(start);
    progress.Finish();
    const double mean = n_scored > 0 ? sum_nll / static_cast<double>(n_scored) : 0.0;
    const double rate = seconds > 0 ? static_cast<double>(tokens.size()) / seconds : 0.0;
    if (args.has("json")) {
        PrintJsonLine({{"tokens", JsonInt(static_cast<int64_t>(tokens.size()))},
                       {"scored", JsonInt(n_scored)},
                       {"mean_nll", JsonNumber(mean)},
                       {"ppl", JsonNumber(std::exp(mean))},
                       {"seconds", JsonNumber(seconds)},
                       {"tokens_per_second", JsonNumber(rate)}});
    } else {
        std::printf("%lld tokens scored: mean NLL %.4f nats, perplexity %.3f (%.2f s, %.0f tokens/s)\n",
                    static_cast<long long>(n_scored), mean, std::exp(mean), seconds, rate);
    }
    return 0;
}

struct BenchRun {
    int threads;
    double ingest_seconds;
    double ingest_rate;
    int32_t decode_tokens;
    double decode_rate;
    bool speculative;  // a speculative decode ran (the model has extra heads)
    mgl_generate_result spec;
    double spec_rate;
};

int CmdBench(const std::vector<std::string> &argv) {
    Args args(argv, {{"tokens", true, false}, {"threads", true, false}, {"decode-tokens", true, false},
                     {"draft", true, false}, {"json", false, false}});
    RequirePositional(args, 1, "MODEL");
    const int64_t n_tokens = args.get_int("tokens", 4096, 1, int64_t{1} << 31);
    const int32_t decode_tokens = static_cast<int32_t>(args.get_int("decode-tokens", 32, 1, 1 << 20));
    std::vector<int> thread_counts;
    if (args.has("threads")) {
        thread_counts = cli::ParseIntList(args.get("threads"), "--threads", 1, static_cast<int>(kMaxThreads));
    } else {
        thread_counts = {1};
        if (cli::HardwareThreads() > 1) thread_counts.push_back(cli::HardwareThreads());
    }
    const bool json = args.has("json");

    cli::Model model(args.positional()[0], thread_counts.front());
    const mgl_model_info &info = model.info();
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> pick(0, info.n_vocab - 1);
    std::vector<int32_t> tokens(static_cast<size_t>(n_tokens));
    for (int32_t &t : tokens) t = pick(rng);
    const size_t warmup = std::min<size_t>(tokens.size(), static_cast<size_t>(info.chunk_size));

    mgl_generate_params decode = mgl_generate_default_params();
    decode.max_tokens = decode_tokens;
    decode.sampling.temperature = 0;  // greedy: the same work on every run
    decode.stop_at_eos = 0;
    mgl_generate_params spec_decode = decode;
    spec_decode.speculative = 1;
    spec_decode.draft = static_cast<int32_t>(args.get_int("draft", 0, 0, MGL_MAX_DRAFT_HEADS));
    const bool speculative = info.n_predict_heads > 1;

    std::vector<BenchRun> runs;
    for (int threads : thread_counts) {
        model.set_threads(threads);
        {
            cli::State warm(model, "");
            cli::Check(mgl_ingest(model.get(), warm.get(), tokens.data(), warmup, nullptr, nullptr));
        }
        cli::State state(model, "");
        const Clock::time_point start = Clock::now();
        cli::Check(mgl_ingest(model.get(), state.get(), tokens.data(), tokens.size(), nullptr, nullptr));
        const double ingest_seconds = cli::SecondsSince(start);

        // Both decodes start from the same ingested state.
        const ClonedState spec_state = Clone(state.get());
        mgl_generate_result result{};
        const int32_t prompt = tokens.front();
        cli::Check(mgl_generate(model.get(), state.get(), &prompt, 1, &decode, nullptr, nullptr, &result));
        BenchRun run{threads, ingest_seconds, static_cast<double>(tokens.size()) / ingest_seconds, result.n_tokens,
                     result.generate_seconds > 0 ? result.n_tokens / result.generate_seconds : 0.0, speculative, {},
                     0.0};
        if (speculative) {
            cli::Check(mgl_generate(model.get(), spec_state.get(), &prompt, 1, &spec_decode, nullptr, nullptr, &run.spec));
            run.spec_rate = run.spec.generate_seconds > 0 ? run.spec.n_tokens / run.spec.generate_seconds : 0.0;
        }
        runs.push_back(run);
    }
    const int64_t peak_rss = cli::PeakRssBytes();

    if (json) {
        std::string run_list = "[";
        for (size_t i = 0; i < runs.size(); ++i) {
            const BenchRun &r = runs[i];
            if (i) run_list += ", ";
            run_list += "{\"threads\": " + std::to_string(r.threads) +
                        ", \"ingest_seconds\": " + JsonNumber(r.ingest_seconds) +
                        ", \"ingest_tokens_per_second\": " + JsonNumber(r.ingest_rate) +
                        ", \"decode_tokens\": " + std::to_string(r.decode_tokens) +
                        ", \"decode_tokens_per_second\": " + JsonNumber(r.decode_rate);
            if (r.speculative)
                run_list += ", \"speculative_decode_tokens_per_second\": " + JsonNumber(r.spec_rate) +
                            ", \"speculative\": " + SpeculativeJson(r.spec);
            run_list += "}";
        }
        run_list += "]";
        PrintJsonLine({{"tokens", JsonInt(n_tokens)},
                       {"n_params", JsonInt(info.n_params)},
                       {"chunk_size", JsonInt(info.chunk_size)},
                       {"runs", run_list},
                       {"state_bytes", JsonInt(info.state_bytes)},
                       {"peak_rss_bytes", JsonInt(peak_rss)},
                       {"version", JsonString(mgl_version())}});
        return 0;
    }
    std::printf("%s\n", mgl_version());
    std::printf("model: %s (%.1f M parameters), %lld random tokens per ingest run\n\n",
                args.positional()[0].c_str(), static_cast<double>(info.n_params) / 1e6,
                static_cast<long long>(n_tokens));
    if (speculative) {
        std::printf("%8s  %14s  %14s  %18s  %8s  %12s\n", "threads", "ingest tok/s", "decode tok/s",
                    "speculative tok/s", "speedup", "tok/forward");
        for (const BenchRun &r : runs)
            std::printf("%8d  %14.1f  %14.1f  %18.1f  %7.2fx  %12.2f\n", r.threads, r.ingest_rate, r.decode_rate,
                        r.spec_rate, r.decode_rate > 0 ? r.spec_rate / r.decode_rate : 0.0, r.spec.tokens_per_forward);
        const mgl_generate_result &last = runs.back().spec;
        std::printf("\nacceptance per head (last run, %d heads):", last.draft_heads);
        for (int j = 0; j + 1 < last.draft_heads; ++j)
            std::printf(" %d: %.0f%%", j + 2,
                        last.drafted[j] > 0 ? 100.0 * last.accepted[j] / last.drafted[j] : 0.0);
        std::printf("\n");
    } else {
        std::printf("%8s  %14s  %14s\n", "threads", "ingest tok/s", "decode tok/s");
        for (const BenchRun &r : runs) std::printf("%8d  %14.1f  %14.1f\n", r.threads, r.ingest_rate, r.decode_rate);
    }
    std::printf("\nstate bytes: %lld (%.2f MiB)\npeak RSS:    %.1f MiB\n", static_cast<long long>(info.state_bytes),
                static_cast<double>(info.state_bytes) / (1 << 20), static_cast<double>(peak_rss) / (1 << 20));
    return 0;
}

struct Command {
    const char *name;
    const char *help;
    std::function<int(const std::vector<std::string> &)> run;
};

}  // namespace

int main(int argc, char **argv) {
    const std::vector<Command> commands = {{"info", kInfoHelp, CmdInfo},
                                           {"ingest", kIngestHelp, CmdIngest},
                                           {"generate", kGenerateHelp, CmdGenerate},
                                           {"perplexity", kPerplexityHelp, CmdPerplexity},
                                           {"bench", kBenchHelp, CmdBench}};
    if (argc < 2) {
        std::fputs(kUsage, stderr);
        return 1;
    }
    const std::string name = argv[1];
    if (name == "--help" || name == "-h" || name == "help") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (name == "--version") {
        std::printf("%s\n", mgl_version());
        return 0;
    }
    const Command *command = nullptr;
    for (const Command &c : commands)
        if (name == c.name) command = &c;
    if (command == nullptr) {
        std::fprintf(stderr, "megalodon: unknown command '%s' (see 'megalodon --help')\n", name.c_str());
        return 1;
    }
    const std::vector<std::string> rest(argv + 2, argv + argc);
    if (std::find(rest.begin(), rest.end(), "--help") != rest.end() ||
        std::find(rest.begin(), rest.end(), "-h") != rest.end()) {
        std::fputs(command->help, stdout);
        return 0;
    }
    try {
        return command->run(rest);
    } catch (const UsageError &e) {
        std::fprintf(stderr, "megalodon %s: %s (see 'megalodon %s --help')\n", command->name, e.what(), command->name);
    } catch (const cli::RuntimeError &e) {
        std::fprintf(stderr, "megalodon %s: %s: %s\n", command->name, mgl_status_name(e.status), e.what());
    } catch (const std::bad_alloc &) {
        std::fprintf(stderr, "megalodon %s: out of memory\n", command->name);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "megalodon %s: %s\n", command->name, e.what());
    }
    return 1;
}
