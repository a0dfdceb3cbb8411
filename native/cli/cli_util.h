// Helpers of the megalodon command line tool: argument parsing, errors, JSON output, files,
// progress lines and resource usage. Uses only the public C API.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "megalodon.h"

namespace cli {

// A usage mistake (bad option, missing argument): printed as one line, exit status 1.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A failed C API call, with the runtime's message (mgl_last_error()) taken at the failure.
struct RuntimeError : std::runtime_error {
    mgl_status status;
    RuntimeError(mgl_status s, const std::string &message) : std::runtime_error(message), status(s) {}
};

// Throws RuntimeError for a failed status.
void Check(mgl_status status);

// ------------------------------------------------------------------------------------------
// Arguments

struct OptionSpec {
    const char *name;   // without the leading "--"
    bool takes_value;
    bool repeatable;
};

class Args {
public:
    // Parses argv (after the command name). "--name value", "--name=value" and "--" are accepted.
    Args(const std::vector<std::string> &argv, const std::vector<OptionSpec> &specs);

    const std::vector<std::string> &positional() const { return positional_; }
    bool has(const std::string &name) const { return values_.count(name) != 0; }
    // The value of a single-valued option, or `fallback` when absent.
    std::string get(const std::string &name, const std::string &fallback = "") const;
    const std::vector<std::string> &all(const std::string &name) const;

    // Typed accessors; UsageError names the option when the value is malformed or out of range.
    int64_t get_int(const std::string &name, int64_t fallback, int64_t lo, int64_t hi) const;
    double get_double(const std::string &name, double fallback, double lo, double hi) const;

private:
    std::vector<std::string> positional_;
    std::map<std::string, std::vector<std::string>> values_;
};

int64_t ParseInt(const std::string &text, const std::string &what, int64_t lo, int64_t hi);
double ParseDouble(const std::string &text, const std::string &what, double lo, double hi);
// "1,2,8" -> {1, 2, 8}
std::vector<int> ParseIntList(const std::string &text, const std::string &what, int lo, int hi);

// ------------------------------------------------------------------------------------------
// Output

std::string JsonString(const std::string &utf8);
std::string JsonNumber(double v);
// Re-indents compact JSON with two spaces; short arrays of scalars stay on one line.
std::string PrettyJson(const std::string &json);

// ------------------------------------------------------------------------------------------
// System

std::string ReadFile(const std::string &path);
// Peak resident set size of this process in bytes (0 where unknown).
int64_t PeakRssBytes();
int HardwareThreads();

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start);

// Prints "label: done/total tokens (p%) N tokens/s ETA" on stderr: rewritten in place on a
// terminal (at most 10 times a second), a new line every 10 seconds otherwise.
class ProgressLine {
public:
    explicit ProgressLine(std::string label);
    // mgl_progress_fn; `user` is a ProgressLine*.
    static int Callback(int64_t done, int64_t total, void *user);
    // Ends the line (prints the final state once).
    void Finish();

private:
    void Print(int64_t done, int64_t total, bool final_line);
    std::string label_;
    bool tty_;
    Clock::time_point start_;
    Clock::time_point last_print_;
    int64_t done_ = 0, total_ = 0;
    bool printed_ = false;
};

// ------------------------------------------------------------------------------------------
// Model helpers

// Owns a model handle.
class Model {
public:
    Model(const std::string &path, int n_threads);
    ~Model();
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;
    mgl_model *get() const { return model_; }
    const mgl_model_info &info() const { return info_; }
    void set_threads(int n);

private:
    mgl_model *model_ = nullptr;
    mgl_model_info info_{};
};

// Owns a state handle.
class State {
public:
    // A fresh state, or the one saved at `path` when it is not empty.
    State(const Model &model, const std::string &path);
    ~State();
    State(const State &) = delete;
    State &operator=(const State &) = delete;
    mgl_state *get() const { return state_; }

private:
    mgl_state *state_ = nullptr;
};

std::vector<int32_t> Tokenize(const Model &model, const std::string &text, int flags);

}  // namespace cli
