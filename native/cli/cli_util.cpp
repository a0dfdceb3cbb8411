#include "cli_util.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#ifdef _WIN32
#include <io.h>
#define CLI_ISATTY(fd) _isatty(fd)
#else
#include <sys/resource.h>
#include <unistd.h>
#define CLI_ISATTY(fd) isatty(fd)
#endif

namespace cli {

void Check(mgl_status status) {
    if (status == MGL_OK) return;
    std::string message = mgl_last_error();
    if (message.empty()) message = "failed";
    throw RuntimeError(status, message);
}

// ------------------------------------------------------------------------------------------
// Arguments

Args::Args(const std::vector<std::string> &argv, const std::vector<OptionSpec> &specs) {
    auto find_spec = [&](const std::string &name) -> const OptionSpec * {
        for (const OptionSpec &s : specs)
            if (name == s.name) return &s;
        return nullptr;
    };
    bool only_positional = false;
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string &arg = argv[i];
        if (only_positional || arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
            if (!only_positional && arg.size() > 1 && arg[0] == '-' && arg != "-")
                throw UsageError("unknown option " + arg);
            positional_.push_back(arg);
            continue;
        }
        if (arg == "--") {
            only_positional = true;
            continue;
        }
        std::string name = arg.substr(2);
        std::string value;
        bool has_inline_value = false;
        const size_t eq = name.find('=');
        if (eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_inline_value = true;
        }
        const OptionSpec *spec = find_spec(name);
        if (spec == nullptr) throw UsageError("unknown option --" + name);
        if (!spec->repeatable && values_.count(name)) throw UsageError("--" + name + " given twice");
        if (spec->takes_value) {
            if (!has_inline_value) {
                if (i + 1 >= argv.size()) throw UsageError("--" + name + " needs a value");
                value = argv[++i];
            }
        } else if (has_inline_value) {
            throw UsageError("--" + name + " takes no value");
        }
        values_[name].push_back(value);
    }
}

std::string Args::get(const std::string &name, const std::string &fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second.back();
}

const std::vector<std::string> &Args::all(const std::string &name) const {
    static const std::vector<std::string> kNone;
    auto it = values_.find(name);
    return it == values_.end() ? kNone : it->second;
}

int64_t Args::get_int(const std::string &name, int64_t fallback, int64_t lo, int64_t hi) const {
    return has(name) ? ParseInt(get(name), "--" + name, lo, hi) : fallback;
}

double Args::get_double(const std::string &name, double fallback, double lo, double hi) const {
    return has(name) ? ParseDouble(get(name), "--" + name, lo, hi) : fallback;
}

int64_t ParseInt(const std::string &text, const std::string &what, int64_t lo, int64_t hi) {
    errno = 0;
    char *end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE)
        throw UsageError(what + " must be an integer, got '" + text + "'");
    if (v < lo || v > hi)
        throw UsageError(what + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + text);
    return v;
}

double ParseDouble(const std::string &text, const std::string &what, double lo, double hi) {
    errno = 0;
    char *end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
        throw UsageError(what + " must be a number, got '" + text + "'");
    if (v < lo || v > hi)
        throw UsageError(what + " must be in [" + JsonNumber(lo) + ", " + JsonNumber(hi) + "], got " + text);
    return v;
}

std::vector<int> ParseIntList(const std::string &text, const std::string &what, int lo, int hi) {
    std::vector<int> values;
    size_t start = 0;
    for (;;) {
        const size_t comma = text.find(',', start);
        const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        values.push_back(static_cast<int>(ParseInt(item, what, lo, hi)));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return values;
}

// ------------------------------------------------------------------------------------------
// Output

namespace {

// One step of a UTF-8 decoder at s[i]: the number of bytes it takes and whether they form a
// valid character. An invalid sequence takes its maximal valid prefix (at least one byte), the
// unit that decoders replace with one U+FFFD (the WHATWG and Unicode recommendation), so the
// JSON text matches what Node, browsers and Python decode from the raw bytes.
struct Utf8Step {
    size_t length;
    bool valid;
};

Utf8Step DecodeUtf8(const std::string &s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return {1, true};
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return {1, false};
    }
    for (size_t k = 1; k <= need; ++k) {
        if (i + k >= s.size()) return {k, false};
        const unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if (cc < lo || cc > hi) return {k, false};
        lo = 0x80;
        hi = 0xBF;
    }
    return {need + 1, true};
}

}  // namespace

std::string JsonString(const std::string &utf8) {
    std::string out = "\"";
    for (size_t i = 0; i < utf8.size();) {
        const unsigned char c = static_cast<unsigned char>(utf8[i]);
        switch (c) {
        case '"': out += "\\\""; ++i; continue;
        case '\\': out += "\\\\"; ++i; continue;
        case '\n': out += "\\n"; ++i; continue;
        case '\r': out += "\\r"; ++i; continue;
        case '\t': out += "\\t"; ++i; continue;
        default: break;
        }
        if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
            ++i;
            continue;
        }
        const Utf8Step step = DecodeUtf8(utf8, i);
        if (step.valid)
            out.append(utf8, i, step.length);
        else  // JSON text must be Unicode
            out += "\\ufffd";
        i += step.length;
    }
    return out + "\"";
}

std::string JsonNumber(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

std::string PrettyJson(const std::string &json) {
    std::string out;
    int depth = 0;
    auto newline = [&] {
        out += '\n';
        out.append(static_cast<size_t>(depth) * 2, ' ');
    };
    // Index just past the string that starts at json[i] (a '"').
    auto skip_string = [&](size_t i) {
        for (++i; i < json.size(); ++i) {
            if (json[i] == '\\') ++i;
            else if (json[i] == '"') return i + 1;
        }
        return json.size();
    };
    for (size_t i = 0; i < json.size();) {
        const char c = json[i];
        if (c == '"') {
            const size_t end = skip_string(i);
            out.append(json, i, end - i);
            i = end;
        } else if (c == '{' || c == '[') {
            // Arrays of scalars that fit on a line stay on one line.
            if (c == '[') {
                size_t j = i + 1;
                bool scalar = true;
                while (j < json.size() && json[j] != ']') {
                    if (json[j] == '"') { j = skip_string(j); continue; }
                    if (json[j] == '[' || json[j] == '{') { scalar = false; break; }
                    ++j;
                }
                if (scalar && j < json.size() && j - i < 80) {
                    for (size_t k = i; k <= j; ++k) {
                        if (json[k] == '"') {
                            const size_t end = skip_string(k);
                            out.append(json, k, end - k);
                            k = end - 1;
                        } else if (json[k] == ',') {
                            out += ", ";
                        } else if (!std::isspace(static_cast<unsigned char>(json[k]))) {
                            out += json[k];
                        }
                    }
                    i = j + 1;
                    continue;
                }
            }
            size_t next = i + 1;
            while (next < json.size() && std::isspace(static_cast<unsigned char>(json[next]))) ++next;
            if (next < json.size() && (json[next] == '}' || json[next] == ']')) {
                out += c;
                out += json[next];
                i = next + 1;
                continue;
            }
            out += c;
            ++depth;
            newline();
            ++i;
        } else if (c == '}' || c == ']') {
            --depth;
            newline();
            out += c;
            ++i;
        } else if (c == ',') {
            out += ',';
            newline();
            ++i;
        } else if (c == ':') {
            out += ": ";
            ++i;
        } else if (std::isspace(static_cast<unsigned char>(c))) {
            ++i;
        } else {
            out += c;
            ++i;
        }
    }
    return out;
}

// ------------------------------------------------------------------------------------------
// System

std::string ReadFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) throw std::runtime_error("cannot read '" + path + "'");
    return buffer.str();
}

int64_t PeakRssBytes() {
#ifdef _WIN32
    return 0;
#else
    struct rusage usage {};
    if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
#ifdef __APPLE__
    return static_cast<int64_t>(usage.ru_maxrss);  // bytes
#else
    return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // kilobytes
#endif
#endif
}

int HardwareThreads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

double SecondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

ProgressLine::ProgressLine(std::string label)
    : label_(std::move(label)), tty_(CLI_ISATTY(2) != 0), start_(Clock::now()), last_print_(start_) {}

int ProgressLine::Callback(int64_t done, int64_t total, void *user) {
    ProgressLine *line = static_cast<ProgressLine *>(user);
    line->done_ = done;
    line->total_ = total;
    const double since_print = std::chrono::duration<double>(Clock::now() - line->last_print_).count();
    if (since_print >= (line->tty_ ? 0.1 : 10.0)) line->Print(done, total, false);
    return 0;
}

void ProgressLine::Finish() {
    if (total_ > 0) Print(done_, total_, true);
}

void ProgressLine::Print(int64_t done, int64_t total, bool final_line) {
    last_print_ = Clock::now();
    const double seconds = SecondsSince(start_);
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
    char eta[32] = "";
    if (!final_line && rate > 0 && done < total)
        std::snprintf(eta, sizeof eta, "  ETA %.0f s", static_cast<double>(total - done) / rate);
    std::fprintf(stderr, "%s%s: %lld/%lld tokens (%.1f%%)  %.0f tokens/s  %.1f s%s%s", tty_ && printed_ ? "\r" : "",
                 label_.c_str(), static_cast<long long>(done), static_cast<long long>(total),
                 total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0, rate, seconds,
                 eta, tty_ ? "\x1b[K" : "\n");
    if (tty_ && final_line) std::fputc('\n', stderr);
    std::fflush(stderr);
    printed_ = true;
}

// ------------------------------------------------------------------------------------------
// Model helpers

Model::Model(const std::string &path, int n_threads) {
    mgl_model_params params = mgl_model_default_params();
    params.n_threads = n_threads;
    Check(mgl_model_load(path.c_str(), &params, &model_));
    Check(mgl_model_get_info(model_, &info_));
}

Model::~Model() { mgl_model_free(model_); }

void Model::set_threads(int n) {
    Check(mgl_model_set_threads(model_, n));
    Check(mgl_model_get_info(model_, &info_));
}

State::State(const Model &model, const std::string &path) {
    if (path.empty())
        Check(mgl_state_create(model.get(), 0, &state_));
    else
        Check(mgl_state_load(model.get(), path.c_str(), &state_));
}

State::~State() { mgl_state_free(state_); }

std::vector<int32_t> Tokenize(const Model &model, const std::string &text, int flags) {
    std::vector<int32_t> tokens(text.size() + 8);
    size_t n = 0;
    Check(mgl_tokenize(model.get(), text.data(), text.size(), flags, tokens.data(), tokens.size(), &n));
    if (n > tokens.size()) {
        tokens.resize(n);
        Check(mgl_tokenize(model.get(), text.data(), text.size(), flags, tokens.data(), tokens.size(), &n));
    }
    tokens.resize(n);
    return tokens;
}

}  // namespace cli
