// Unicode helpers for the tokenizers (see unicode.hpp); categories and normalization come from ICU.
// A build without ICU (GPU machines lacking libicu-dev) handles ASCII and refuses anything else.
#include "runtime/tokenizer/unicode.hpp"

#include <cstdio>

#if LLMC_HAVE_ICU
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>
#endif

#include "runtime/ir/error.hpp"

namespace llmc::runtime::unicode {

namespace {

// Second-byte bounds of a well-formed sequence by lead byte (Unicode 15, table 3-7).
bool lead_info(unsigned char b, size_t& len, unsigned char& lo, unsigned char& hi) {
  lo = 0x80;
  hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) len = 2;
  else if (b == 0xE0) { len = 3; lo = 0xA0; }
  else if (b >= 0xE1 && b <= 0xEC) len = 3;
  else if (b == 0xED) { len = 3; hi = 0x9F; }
  else if (b >= 0xEE && b <= 0xEF) len = 3;
  else if (b == 0xF0) { len = 4; lo = 0x90; }
  else if (b >= 0xF1 && b <= 0xF3) len = 4;
  else if (b == 0xF4) { len = 4; hi = 0x8F; }
  else return false;
  return true;
}

bool ascii_only(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

#if LLMC_HAVE_ICU
int8_t category(char32_t c) { return static_cast<int8_t>(u_charType(static_cast<UChar32>(c))); }
#endif

}  // namespace

void require_icu(char32_t c) {
#if LLMC_HAVE_ICU
  (void)c;
#else
  char hex[16];
  std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(c));
  throw Error(std::string("tokenizer: this build has no ICU, so it cannot classify or normalize ") + hex +
                  " (non-ASCII text); rebuild with libicu-dev, or pass token ids instead of text",
              ErrorKind::Runtime);
#endif
}

size_t valid_len(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return 1;
  size_t len;
  unsigned char lo, hi;
  if (!lead_info(b, len, lo, hi) || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return 0;
  }
  return len;
}

char32_t next_cp(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  size_t len;
  unsigned char lo, hi;
  if (!lead_info(b, len, lo, hi)) {
    ++i;
    return kReplacement;
  }
  char32_t cp = b & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  size_t k = 1;
  for (; k < len && i + k < s.size(); ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) break;
    cp = (cp << 6) | (c & 0x3F);
  }
  i += k;
  return k == len ? cp : kReplacement;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string to_utf8(char32_t cp) {
  std::string s;
  append_utf8(s, cp);
  return s;
}

std::string lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const size_t n = valid_len(bytes, i);
    if (n) {
      out.append(bytes.data() + i, n);
      i += n;
    } else {
      next_cp(bytes, i);
      append_utf8(out, kReplacement);
    }
  }
  return out;
}

size_t complete_prefix(std::string_view bytes) {
  // Look back at most 3 bytes for a lead byte whose sequence is cut short by the end.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<unsigned char>(bytes[n - back]);
    if (b < 0x80) return n;
    if (b >= 0xC0) {
      size_t len;
      unsigned char lo, hi;
      if (!lead_info(b, len, lo, hi) || len <= back) return n;
      for (size_t k = 1; k < back; ++k) {
        const auto c = static_cast<unsigned char>(bytes[n - back + k]);
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return n;  // already ill-formed
      }
      return n - back;
    }
  }
  return n;
}

#if LLMC_HAVE_ICU
bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  const int8_t t = category(c);
  return t >= U_UPPERCASE_LETTER && t <= U_OTHER_LETTER;
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const int8_t t = category(c);
  return t >= U_DECIMAL_DIGIT_NUMBER && t <= U_OTHER_NUMBER;
}

bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE);
}

bool is_punctuation(char32_t c) {
  const int8_t t = category(c);
  return t == U_DASH_PUNCTUATION || t == U_START_PUNCTUATION || t == U_END_PUNCTUATION ||
         t == U_CONNECTOR_PUNCTUATION || t == U_OTHER_PUNCTUATION || t == U_INITIAL_PUNCTUATION ||
         t == U_FINAL_PUNCTUATION;
}

bool is_symbol(char32_t c) {
  const int8_t t = category(c);
  return t == U_MATH_SYMBOL || t == U_CURRENCY_SYMBOL || t == U_MODIFIER_SYMBOL || t == U_OTHER_SYMBOL;
}

bool is_mark_nonspacing(char32_t c) { return category(c) == U_NON_SPACING_MARK; }

bool is_other(char32_t c) {
  const int8_t t = category(c);
  return t == U_CONTROL_CHAR || t == U_FORMAT_CHAR || t == U_SURROGATE || t == U_PRIVATE_USE_CHAR ||
         t == U_UNASSIGNED;
}

bool is_alphanumeric(char32_t c) { return is_letter(c) || is_number(c); }

std::string normalize(std::string_view s, std::string_view form) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  if (form == "NFC") n = icu::Normalizer2::getNFCInstance(err);
  else if (form == "NFD") n = icu::Normalizer2::getNFDInstance(err);
  else if (form == "NFKC") n = icu::Normalizer2::getNFKCInstance(err);
  else if (form == "NFKD") n = icu::Normalizer2::getNFKDInstance(err);
  else throw Error("tokenizer: unknown normalization form '" + std::string(form) + "'");
  if (U_FAILURE(err)) throw Error(std::string("tokenizer: ICU normalizer unavailable: ") + u_errorName(err), ErrorKind::Runtime);
  if (ascii_only(s)) return std::string(s);
  const icu::UnicodeString in = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
  const icu::UnicodeString out = n->normalize(in, err);
  if (U_FAILURE(err)) throw Error(std::string("tokenizer: ICU normalization failed: ") + u_errorName(err), ErrorKind::Runtime);
  std::string r;
  out.toUTF8String(r);
  return r;
}

std::string lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out += static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b);
      ++i;
      continue;
    }
    const char32_t c = next_cp(s, i);
    UChar src[2];
    int32_t src_len = 0;
    U16_APPEND_UNSAFE(src, src_len, static_cast<UChar32>(c));
    UChar dst[8];
    UErrorCode err = U_ZERO_ERROR;
    const int32_t n = u_strToLower(dst, 8, src, src_len, "", &err);
    if (U_FAILURE(err)) {
      append_utf8(out, c);
      continue;
    }
    for (int32_t k = 0; k < n;) {
      UChar32 d;
      U16_NEXT(dst, k, n, d);
      append_utf8(out, static_cast<char32_t>(d));
    }
  }
  return out;
}

#else
bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  require_icu(c);
  return false;
}
bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  require_icu(c);
  return false;
}
bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  require_icu(c);
  return false;
}
bool is_punctuation(char32_t c) {
  if (c < 0x80) return (c >= 0x21 && c <= 0x2F && c != '$' && c != '+') || (c >= 0x3A && c <= 0x40 && c != '<' && c != '=' && c != '>') ||
                       (c >= 0x5B && c <= 0x60 && c != '^' && c != '`') || c == '{' || c == '}';
  require_icu(c);
  return false;
}
bool is_symbol(char32_t c) {
  if (c < 0x80) return c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '`' || c == '|' || c == '~';
  require_icu(c);
  return false;
}
bool is_mark_nonspacing(char32_t c) {
  if (c < 0x80) return false;
  require_icu(c);
  return false;
}
bool is_other(char32_t c) {
  if (c < 0x80) return c < 0x20 || c == 0x7F;
  require_icu(c);
  return false;
}
bool is_alphanumeric(char32_t c) { return is_letter(c) || is_number(c); }

std::string normalize(std::string_view s, std::string_view form) {
  if (form != "NFC" && form != "NFD" && form != "NFKC" && form != "NFKD")
    throw Error("tokenizer: unknown normalization form '" + std::string(form) + "'");
  for (size_t i = 0; i < s.size();) {
    const char32_t c = next_cp(s, i);
    if (c >= 0x80) require_icu(c);
  }
  return std::string(s);
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (size_t i = 0; i < out.size();) {
    const char32_t c = next_cp(out, i);
    if (c >= 0x80) require_icu(c);
  }
  for (char& ch : out)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
  return out;
}

#endif

}  // namespace llmc::runtime::unicode
