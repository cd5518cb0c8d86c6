// HF tokenizers normalizers (tokenizers/src/normalizers): BertNormalizer, the Unicode forms,
// Lowercase, Strip, StripAccents, Replace, Prepend and Sequence.
#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/hf_components.hpp"
#include "runtime/tokenizer/unicode.hpp"

namespace llmc::runtime::hf {

using nlohmann::json;

namespace {

bool get_bool(const json& j, const char* key, bool dflt) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? dflt : it->get<bool>();
}

// tokenizers/src/normalizers/bert.rs
bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::string strip_accents(const std::string& s) {
  const std::string d = unicode::normalize(s, "NFD");
  std::string out;
  out.reserve(d.size());
  for (size_t i = 0; i < d.size();) {
    const size_t at = i;
    const char32_t c = unicode::next_cp(d, i);
    if (!bert_is_mark_nonspacing(c)) out.append(d, at, i - at);
  }
  return out;
}

class BertNormalizer : public Normalizer {
 public:
  explicit BertNormalizer(const json& j)
      : clean_text_(get_bool(j, "clean_text", true)),
        chinese_(get_bool(j, "handle_chinese_chars", true)),
        lowercase_(get_bool(j, "lowercase", true)),
        strip_accents_(get_bool(j, "strip_accents", lowercase_)) {}

  std::string apply(std::string s) const override {
    if (clean_text_ || chinese_) {
      std::string out;
      out.reserve(s.size());
      for (size_t i = 0; i < s.size();) {
        const size_t at = i;
        const char32_t c = unicode::next_cp(s, i);
        const bool tnr = c == '\t' || c == '\n' || c == '\r';
        if (clean_text_) {
          if (c == 0 || c == 0xFFFD || (!tnr && bert_is_control(c))) continue;
          if (tnr || unicode::is_whitespace(c)) {
            out += ' ';
            continue;
          }
        }
        if (chinese_ && is_chinese_char(c)) {
          out += ' ';
          out.append(s, at, i - at);
          out += ' ';
        } else {
          out.append(s, at, i - at);
        }
      }
      s = std::move(out);
    }
    if (strip_accents_) s = strip_accents(s);
    if (lowercase_) s = unicode::lowercase(s);
    return s;
  }

 private:
  bool clean_text_, chinese_, lowercase_, strip_accents_;
};

class FormNormalizer : public Normalizer {
 public:
  explicit FormNormalizer(std::string form) : form_(std::move(form)) {}
  std::string apply(std::string s) const override { return unicode::normalize(s, form_); }

 private:
  std::string form_;
};

class Lowercase : public Normalizer {
 public:
  std::string apply(std::string s) const override { return unicode::lowercase(s); }
};

class StripAccents : public Normalizer {  // removes combining marks only; HF users pair it with NFD
 public:
  std::string apply(std::string s) const override {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      const size_t at = i;
      if (!is_combining_mark_unicode9(unicode::next_cp(s, i))) out.append(s, at, i - at);
    }
    return out;
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string apply(std::string s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        size_t i = b;
        if (!unicode::is_whitespace(unicode::next_cp(s, i))) break;
        b = i;
      }
    }
    if (right_) {
      while (e > b) {
        size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t i = start;
        if (!unicode::is_whitespace(unicode::next_cp(s, i))) break;
        e = start;
      }
    }
    return s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class Replace : public Normalizer {
 public:
  explicit Replace(const json& j) : content_(j.at("content").get<std::string>()) {
    const json& p = j.at("pattern");
    if (p.contains("String")) literal_ = p["String"].get<std::string>();
    else if (p.contains("Regex")) regex_ = std::make_unique<Regex>(p["Regex"].get<std::string>());
    else throw Error("tokenizer.json: Replace pattern needs 'String' or 'Regex'");
  }
  std::string apply(std::string s) const override {
    std::vector<std::pair<size_t, size_t>> m;
    if (regex_) {
      m = regex_->find_all(s);
    } else if (!literal_.empty()) {
      for (size_t p = s.find(literal_); p != std::string::npos; p = s.find(literal_, p + literal_.size()))
        m.emplace_back(p, p + literal_.size());
    }
    std::string out;
    size_t pos = 0;
    for (auto [b, e] : m) {
      out.append(s, pos, b - pos);
      out += content_;
      pos = e;
    }
    out.append(s, pos, std::string::npos);
    return out;
  }

 private:
  std::string literal_, content_;
  std::unique_ptr<Regex> regex_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  std::string apply(std::string s) const override { return s.empty() ? s : prepend_ + s; }

 private:
  std::string prepend_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  std::string apply(std::string s) const override {
    for (const auto& p : parts_) s = p->apply(std::move(s));
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = j.value("type", "");
  if (type == "BertNormalizer") return std::make_unique<BertNormalizer>(j);
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") return std::make_unique<FormNormalizer>(type);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip") return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  if (type == "Replace") return std::make_unique<Replace>(j);
  if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const json& n : j.at("normalizers"))
      if (auto p = make_normalizer(n)) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  throw Error("tokenizer.json: normalizer type '" + type + "' is not supported");
}

}  // namespace llmc::runtime::hf
