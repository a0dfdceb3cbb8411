// Sampling chain: repetition penalty -> (greedy | temperature -> top-k -> softmax -> top-p ->
// min-p -> draw). Every step is deterministic given the seed; no std distributions are used
// because their output differs between standard libraries.
#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "common.h"
#include "kernels.h"

namespace mgl {

namespace {

uint64_t splitmix64(uint64_t &x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// NaN logits take no part in sampling (they would break the orderings below).
inline float sanitised(float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; }

}  // namespace

Rng::Rng(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t &s : s_) s = splitmix64(x);
}

uint64_t Rng::next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

Sampler::Sampler(const mgl_sampling_params &params) : params_(params), rng_(params.seed) {
    auto bad = [](const std::string &what) { fail(MGL_ERR_INVALID_ARG, "sampling: " + what); };
    if (std::isnan(params.temperature) || std::isinf(params.temperature))
        bad("temperature must be a finite number");
    if (std::isnan(params.top_p)) bad("top_p must be a number");
    if (std::isnan(params.min_p) || params.min_p > 1) bad("min_p must be at most 1");
    if (!(params.repeat_penalty > 0) || std::isinf(params.repeat_penalty))
        bad("repeat_penalty must be a finite number > 0");
}

int32_t Sampler::sample(const float *logits, int32_t n_vocab, const int32_t *history, size_t n_history) {
    size_t n = 0;
    const int32_t certain = filter(logits, n_vocab, history, n_history, n);
    if (certain >= 0) return certain;
    double mass = 0;
    for (size_t i = 0; i < n; ++i) mass += candidates_[i].p;
    const double u = rng_.uniform() * mass;
    double cumulative = 0;
    for (size_t i = 0; i < n; ++i) {
        cumulative += candidates_[i].p;
        if (u < cumulative) return candidates_[i].id;
    }
    return candidates_[n - 1].id;  // u rounded up to the total mass
}

void Sampler::distribution(const float *logits, int32_t n_vocab, const int32_t *history, size_t n_history,
                           std::vector<TokenProb> &out) {
    size_t n = 0;
    const int32_t certain = filter(logits, n_vocab, history, n_history, n);
    out.clear();
    if (certain >= 0) {
        out.push_back({certain, 1.0});
        return;
    }
    double mass = 0;
    for (size_t i = 0; i < n; ++i) mass += candidates_[i].p;
    for (size_t i = 0; i < n; ++i) out.push_back({candidates_[i].id, candidates_[i].p / mass});
}

int32_t Sampler::filter(const float *logits, int32_t n_vocab, const int32_t *history, size_t n_history, size_t &n_out) {
    if (!logits) fail(MGL_ERR_INVALID_ARG, "sampling: logits is null");
    if (n_vocab <= 0) fail(MGL_ERR_INVALID_ARG, "sampling: n_vocab must be positive");
    if (n_history > 0 && !history) fail(MGL_ERR_INVALID_ARG, "sampling: history is null");
    const bool penalise = params_.repeat_penalty != 1.0f && params_.repeat_last_n != 0 && n_history > 0;
    if (params_.temperature <= 0 && !penalise) return int32_t(first_max(logits, n_vocab));
    work_.resize(size_t(n_vocab));
    for (int32_t i = 0; i < n_vocab; ++i) work_[size_t(i)] = sanitised(logits[i]);

    // Repetition penalty over the distinct tokens of the window (llama style: positive logits
    // divided, negative ones multiplied).
    if (penalise) {
        const size_t window = params_.repeat_last_n < 0 ? n_history : std::min(n_history, size_t(params_.repeat_last_n));
        penalised_.assign(history + (n_history - window), history + n_history);
        std::sort(penalised_.begin(), penalised_.end());
        penalised_.erase(std::unique(penalised_.begin(), penalised_.end()), penalised_.end());
        for (int32_t t : penalised_) {
            if (t < 0 || t >= n_vocab) continue;
            float &l = work_[size_t(t)];
            l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
        }
    }

    if (params_.temperature <= 0) return int32_t(first_max(work_.data(), n_vocab));

    const float inv_t = 1.0f / params_.temperature;
    candidates_.resize(size_t(n_vocab));
    for (int32_t i = 0; i < n_vocab; ++i) candidates_[size_t(i)] = {i, work_[size_t(i)] * inv_t, 0.0};
    // Total order: higher logit first, then lower id.
    auto before = [](const Candidate &a, const Candidate &b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    };
    size_t n = candidates_.size();
    bool sorted = false;
    if (params_.top_k > 0 && size_t(params_.top_k) < n) {
        n = size_t(params_.top_k);
        std::partial_sort(candidates_.begin(), candidates_.begin() + std::ptrdiff_t(n), candidates_.end(), before);
        sorted = true;
    }
    const bool use_top_p = params_.top_p < 1.0f;
    if (use_top_p && !sorted) {
        std::sort(candidates_.begin(), candidates_.end(), before);
        sorted = true;
    }

    float max_logit = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < n; ++i) max_logit = std::max(max_logit, candidates_[i].logit);
    if (max_logit == -std::numeric_limits<float>::infinity()) {
        // Nothing has a finite logit: fall back to the lowest id left.
        int32_t id = candidates_[0].id;
        for (size_t i = 1; i < n; ++i) id = std::min(id, candidates_[i].id);
        return id;
    }
    double total = 0, p_max = 0;
    for (size_t i = 0; i < n; ++i) {
        const double p = std::exp(double(candidates_[i].logit) - double(max_logit));
        candidates_[i].p = p;
        total += p;
        p_max = std::max(p_max, p);
    }

    if (use_top_p) {
        // Smallest prefix (by probability) whose mass reaches top_p; at least one token.
        const double target = double(std::max(params_.top_p, 0.0f)) * total;
        double cumulative = 0;
        size_t keep = 0;
        while (keep < n) {
            cumulative += candidates_[keep].p;
            ++keep;
            if (cumulative >= target) break;
        }
        n = keep;
    }

    if (params_.min_p > 0) {
        const double threshold = double(params_.min_p) * p_max;
        size_t kept = 0;
        for (size_t i = 0; i < n; ++i)
            if (candidates_[i].p >= threshold) candidates_[kept++] = candidates_[i];
        n = kept;  // the most likely token always passes
    }
    n_out = n;
    return -1;
}

}  // namespace mgl
