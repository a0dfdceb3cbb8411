// Tokenizers read from GGUF metadata: byte-level BPE ("gpt2") and SentencePiece BPE with byte
// fallback ("llama").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf.h"

namespace mgl {

class Tokenizer {
public:
    // Throws mgl::Error(MGL_ERR_FORMAT / MGL_ERR_UNSUPPORTED) for missing or inconsistent data.
    static std::unique_ptr<Tokenizer> from_gguf(const GgufFile &file);
    virtual ~Tokenizer() = default;

    // Any bytes are accepted (invalid UTF-8 included) and round-trip through decode().
    virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const = 0;
    // Concatenated token bytes; for llama tokenizers with a space prefix, the one space the
    // encoder added at the start of the text is removed again, so decode(encode(t)) == t.
    // Control tokens (BOS/EOS/...) render as nothing unless render_special.
    virtual std::string decode(const int32_t *tokens, size_t n, bool render_special) const = 0;
    // Raw bytes of one token as it appears inside generated text (no prefix stripping).
    virtual std::string token_bytes(int32_t token, bool render_special) const = 0;

    const std::string &piece(int32_t token) const { return pieces_.at(static_cast<size_t>(token)); }
    int32_t n_vocab() const { return static_cast<int32_t>(pieces_.size()); }
    int32_t bos() const { return bos_; }
    int32_t eos() const { return eos_; }
    bool add_bos() const { return add_bos_; }
    bool is_control(int32_t token) const;  // token_type 3 (control), BOS/EOS included
    const std::string &kind() const { return kind_; }

protected:
    std::string kind_;
    std::vector<std::string> pieces_;
    std::vector<int32_t> types_;
    int32_t bos_ = -1, eos_ = -1, unk_ = -1;
    bool add_bos_ = false;
};

}  // namespace mgl
