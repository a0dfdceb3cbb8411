// Generation (mgl_generate): the plain decode loop and self-speculative decoding with the
// multi-token heads (multi-token.md 3), which share the output side (repetition-penalty history,
// stop strings, EOS, the token callback and UTF-8-safe streaming text).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "megalodon.h"
#include "model.h"
#include "state.h"

namespace mgl {

// Prediction heads (head 1 included) a speculative generation uses: params.draft, or all of the
// model's heads up to MGL_MAX_DRAFT_HEADS when it is 0. Throws MGL_ERR_INVALID_ARG for a draft
// outside [0, MGL_MAX_DRAFT_HEADS] or above the model's head count.
int speculative_heads(const ModelConfig &config, const mgl_generate_params &params);

// Runs mgl_generate once its arguments are checked (prompt ids in range, non-empty stop strings).
// result (optional) was zeroed by the caller.
void generate(const Model &model, State &state, const int32_t *prompt, size_t n_prompt,
              const mgl_generate_params &params, std::vector<std::string> stops, mgl_token_fn on_token, void *user,
              mgl_generate_result *result);

}  // namespace mgl
