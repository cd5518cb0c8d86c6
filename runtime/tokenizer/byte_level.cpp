// GPT-2 byte alphabet and the GPT-2 pre-tokenization regex (see byte_level.hpp).
#include "runtime/tokenizer/byte_level.hpp"

#include "runtime/tokenizer/unicode.hpp"

namespace llmc::runtime {

ByteAlphabet::ByteAlphabet() {
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cp_[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
    utf8_[b] = unicode::to_utf8(cp_[b]);
    back_[cp_[b]] = static_cast<uint8_t>(b);
  }
}

std::string ByteAlphabet::encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += utf8_[b];
  return out;
}

int ByteAlphabet::decode(char32_t c) const {
  auto it = back_.find(c);
  return it == back_.end() ? -1 : it->second;
}

namespace {
enum Cls : uint8_t { kLetter, kNumber, kSpace, kOther };
Cls classify(char32_t c) {
  if (unicode::is_letter(c)) return kLetter;
  if (unicode::is_number(c)) return kNumber;
  if (unicode::is_whitespace(c)) return kSpace;
  return kOther;
}
}  // namespace

std::vector<std::pair<size_t, size_t>> gpt2_split(std::string_view text) {
  std::vector<char32_t> cp;
  std::vector<Cls> cls;
  std::vector<size_t> off;  // byte offset of each code point, plus the end
  for (size_t i = 0; i < text.size();) {
    off.push_back(i);
    const char32_t c = unicode::next_cp(text, i);
    cp.push_back(c);
    cls.push_back(classify(c));
  }
  off.push_back(text.size());
  const size_t n = cp.size();
  auto run = [&](size_t j, Cls k) {
    while (j < n && cls[j] == k) ++j;
    return j;
  };

  std::vector<std::pair<size_t, size_t>> out;
  size_t i = 0;
  while (i < n) {
    size_t j = 0;
    const char32_t c = cp[i];
    if (c == '\'' && i + 1 < n) {  // 's|'t|'re|'ve|'m|'ll|'d
      const char32_t a = cp[i + 1];
      const char32_t b = i + 2 < n ? cp[i + 2] : 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') j = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) j = i + 3;
    }
    if (!j && c == ' ' && i + 1 < n && cls[i + 1] != kSpace) {  // ' ?\p{L}+' and friends
      j = run(i + 1, cls[i + 1]);
    }
    if (!j && cls[i] != kSpace) j = run(i, cls[i]);
    if (!j) {  // \s+(?!\S) backs off one character before a non-space; else \s+
      const size_t e = run(i, kSpace);
      j = (e == n || e - i == 1) ? e : e - 1;
    }
    out.emplace_back(off[i], off[j]);
    i = j;
  }
  return out;
}

}  // namespace llmc::runtime
