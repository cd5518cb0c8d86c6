// GPT-2's byte-level alphabet (every byte as a printable character, so BPE vocabularies are text)
// and its pre-tokenization regex, matched by hand over code points.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llmc::runtime {

// bytes_to_unicode() of GPT-2's encoder.py: printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order.
class ByteAlphabet {
 public:
  ByteAlphabet();
  const std::string& encode(uint8_t b) const { return utf8_[b]; }
  std::string encode(std::string_view bytes) const;
  // The byte a character stands for, or -1 when it is not in the alphabet.
  int decode(char32_t c) const;

 private:
  std::array<std::string, 256> utf8_;
  std::array<char32_t, 256> cp_{};
  std::unordered_map<char32_t, uint8_t> back_;
};

// Byte ranges [begin, end) of the matches of
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// over `text`, leftmost-first as Oniguruma runs it; together they cover the whole text.
std::vector<std::pair<size_t, size_t>> gpt2_split(std::string_view text);

}  // namespace llmc::runtime
