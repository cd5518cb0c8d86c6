// Unicode helpers for the tokenizers: UTF-8 walking, general categories and normalization forms
// (through ICU), and the lossy UTF-8 decoding HF's decoders end with (Rust's String::from_utf8_lossy).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace llmc::runtime::unicode {

constexpr char32_t kReplacement = 0xFFFD;

// Decodes the code point at s[i] and advances i past it. An invalid or truncated sequence yields
// U+FFFD and advances by its maximal subpart (at least one byte), as the Unicode standard's
// "substitution of maximal subparts" (chapter 3.9) and Rust's from_utf8_lossy do.
char32_t next_cp(std::string_view s, size_t& i);
// Byte length of the well-formed sequence at s[i], or 0 when it is ill-formed.
size_t valid_len(std::string_view s, size_t i);
void append_utf8(std::string& out, char32_t cp);
std::string to_utf8(char32_t cp);
// Every ill-formed subsequence replaced by U+FFFD.
std::string lossy(std::string_view bytes);
// Length of the longest prefix that ends on a character boundary (a trailing incomplete but so
// far valid sequence is left out), for streaming decoders that wait for the rest of a character.
size_t complete_prefix(std::string_view bytes);

// General categories, as Rust's char methods and Oniguruma's \p{..} classes see them.
bool is_letter(char32_t c);       // L*
bool is_number(char32_t c);       // N*  (Rust char::is_numeric)
bool is_whitespace(char32_t c);   // White_Space property (Rust char::is_whitespace, Oniguruma \s)
bool is_punctuation(char32_t c);  // P*
bool is_symbol(char32_t c);       // S*
bool is_mark_nonspacing(char32_t c);  // Mn
bool is_other(char32_t c);        // C*  (Cc Cf Cs Co Cn)
bool is_alphanumeric(char32_t c);  // L* or N*

// Throws (naming the code point) in a build without ICU; does nothing otherwise.
void require_icu(char32_t c);

// Normalization forms of a whole UTF-8 string (ICU Normalizer2). Form: "NFC" "NFD" "NFKC" "NFKD".
std::string normalize(std::string_view s, std::string_view form);
// Full lowercase mapping of each code point on its own (no context such as final sigma), which
// is what Rust's char::to_lowercase and so HF's Lowercase normalizer do.
std::string lowercase(std::string_view s);

}  // namespace llmc::runtime::unicode
