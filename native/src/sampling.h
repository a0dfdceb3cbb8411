// Token sampling: repetition penalty, temperature, top-k, top-p, min-p, and a PRNG of our own
// (xoshiro256** seeded through splitmix64) so that a seed gives the same tokens everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "megalodon.h"

namespace mgl {

class Rng {
public:
    explicit Rng(uint64_t seed);
    uint64_t next();
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

private:
    uint64_t s_[4];
};

struct TokenProb {
    int32_t id;
    double p;
};

class Sampler {
public:
    // Throws MGL_ERR_INVALID_ARG for NaN or out-of-range parameters.
    explicit Sampler(const mgl_sampling_params &params);

    // Picks a token from logits[0..n_vocab). Greedy (the lowest id among equal maxima) when
    // temperature <= 0; the repetition penalty applies in both modes. history: earlier tokens.
    int32_t sample(const float *logits, int32_t n_vocab, const int32_t *history, size_t n_history);

    // The distribution sample() draws from, as (token, probability) pairs summing to 1 in the
    // order sample() walks them; one token of probability 1 when the choice is certain (greedy,
    // or no finite logit).
    void distribution(const float *logits, int32_t n_vocab, const int32_t *history, size_t n_history,
                      std::vector<TokenProb> &out);

    bool greedy() const { return params_.temperature <= 0; }
    Rng &rng() { return rng_; }

private:
    struct Candidate {
        int32_t id;
        float logit;
        double p;
    };
    // The chain before the draw: returns a token when the choice is certain, else -1 with
    // candidates_[0..n) holding unnormalised probabilities.
    int32_t filter(const float *logits, int32_t n_vocab, const int32_t *history, size_t n_history, size_t &n);

    mgl_sampling_params params_;
    Rng rng_;
    std::vector<float> work_;
    std::vector<Candidate> candidates_;
    std::vector<int32_t> penalised_;
};

}  // namespace mgl
