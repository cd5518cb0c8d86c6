// HF tokenizers decoders (tokenizers/src/decoders): ByteLevel, WordPiece, Metaspace, Replace,
// ByteFallback, Fuse, Strip and Sequence, each as its decode_chain.
#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/byte_level.hpp"
#include "runtime/tokenizer/hf_components.hpp"
#include "runtime/tokenizer/unicode.hpp"

namespace llmc::runtime::hf {

using nlohmann::json;

namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, pos)) {
    out.append(s, pos, p - pos);
    out += to;
    pos = p + from.size();
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class ByteLevel : public Decoder {
 public:
  // A token whose characters are all in the byte alphabet becomes those bytes, any other token
  // (an added token such as "<|im_start|>" spelled outside it) its own UTF-8; then lossy UTF-8.
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      std::string mine;
      bool ok = true;
      for (size_t i = 0; i < t.size() && ok;) {
        const int b = alphabet_.decode(unicode::next_cp(t, i));
        if (b < 0) ok = false;
        else mine += static_cast<char>(b);
      }
      bytes += ok ? mine : t;
    }
    tokens.assign(1, unicode::lossy(bytes));
  }

 private:
  ByteAlphabet alphabet_;
};

class WordPiece : public Decoder {
 public:
  explicit WordPiece(const json& j) : prefix_(j.value("prefix", "##")), cleanup_(j.value("cleanup", true)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
        else t.insert(t.begin(), ' ');
      }
      if (cleanup_) cleanup(t);
    }
  }
  // tokenizers' decoders::wordpiece::cleanup, applied token by token.
  static void cleanup(std::string& t) {
    static const std::pair<const char*, const char*> kRules[] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
        {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (auto [from, to] : kRules) replace_all(t, from, to);
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class Metaspace : public Decoder {
 public:
  explicit Metaspace(const json& j) : replacement_(j.value("replacement", "\u2581")) {
    std::string scheme = j.contains("prepend_scheme") ? j["prepend_scheme"].get<std::string>()
                                                      : (j.value("add_prefix_space", true) ? "always" : "never");
    strip_first_ = scheme != "never";
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      replace_all(tokens[i], replacement_, " ");
      if (i == 0 && strip_first_ && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class Replace : public Decoder {
 public:
  explicit Replace(const json& j) : content_(j.at("content").get<std::string>()) {
    const json& p = j.at("pattern");
    if (!p.contains("String")) throw Error("tokenizer.json: Replace decoder supports only a String pattern");
    pattern_ = p["String"].get<std::string>();
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) replace_all(t, pattern_, content_);
  }

 private:
  std::string pattern_, content_;
};

class ByteFallback : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t n_bytes = 0;
    auto flush = [&]() {
      if (!n_bytes) return;
      if (unicode::lossy(bytes) == bytes) out.push_back(bytes);
      else
        for (size_t k = 0; k < n_bytes; ++k) out.push_back(unicode::to_utf8(unicode::kReplacement));
      bytes.clear();
      n_bytes = 0;
    };
    for (std::string& t : tokens) {
      int v = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        const int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
        if (hi >= 0 && lo >= 0) v = hi * 16 + lo;
      }
      if (v >= 0) {
        bytes += static_cast<char>(v);
        ++n_bytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class Fuse : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class Strip : public Decoder {
 public:
  explicit Strip(const json& j)
      : content_(j.at("content").get<std::string>()), start_(j.value("start", size_t{0})), stop_(j.value("stop", size_t{0})) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0 && b < e; ++k) b += content_.size();
      for (size_t k = 0; k < stop_ && e >= b + content_.size() && t.compare(e - content_.size(), content_.size(), content_) == 0; ++k)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : parts_) d->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "WordPiece") return std::make_unique<WordPiece>(j);
  if (type == "Metaspace") return std::make_unique<Metaspace>(j);
  if (type == "Replace") return std::make_unique<Replace>(j);
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") return std::make_unique<Strip>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const json& d : j.at("decoders"))
      if (auto p = make_decoder(d)) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  throw Error("tokenizer.json: decoder type '" + type + "' is not supported");
}

}  // namespace llmc::runtime::hf
