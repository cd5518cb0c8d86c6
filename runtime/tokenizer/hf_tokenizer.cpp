// A tokenizer.json pipeline as HF tokenizers runs it (added tokens, normalizer, pre-tokenizer,
// model, post-processor; decoder), with transformers' tokenizer_config.json rules on top.
#include <array>

#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/hf_components.hpp"
#include "runtime/tokenizer/hf_tokenizer.hpp"
#include "runtime/tokenizer/unicode.hpp"

namespace llmc::runtime {

using nlohmann::json;

namespace {

struct AddedToken {
  int64_t id;
  std::string content;  // as the vocabulary spells it
  std::string pattern;  // as matched: normalized first when `normalized`
  bool special, single_word, lstrip, rstrip, normalized;
};

bool is_word_char(char32_t c) { return unicode::is_alphanumeric(c) || c == '_'; }

// tokenizers' AddedVocabulary matcher: leftmost-longest over a fixed set of strings.
class AddedMatcher {
 public:
  void add(const AddedToken* t) {
    if (t->pattern.empty()) return;
    auto& b = buckets_[static_cast<unsigned char>(t->pattern[0])];
    b.push_back(t);
    std::stable_sort(b.begin(), b.end(), [](auto* x, auto* y) { return x->pattern.size() > y->pattern.size(); });
    empty_ = false;
  }
  struct Match {
    size_t b, e;
    const AddedToken* tok;  // nullptr: plain text
  };
  // HF's find_matches with the single_word / lstrip / rstrip rules.
  std::vector<Match> split(const std::string& s) const {
    std::vector<Match> out;
    size_t start_offset = 0;
    if (!empty_) {
      for (size_t i = 0; i < s.size();) {
        const AddedToken* hit = nullptr;
        for (const AddedToken* t : buckets_[static_cast<unsigned char>(s[i])])
          if (s.compare(i, t->pattern.size(), t->pattern) == 0) {
            hit = t;
            break;
          }
        if (!hit) {
          ++i;
          continue;
        }
        size_t b = i, e = i + hit->pattern.size();
        i = e;
        if (hit->single_word) {
          bool left_ok = true, right_ok = true;
          if (b > 0) {
            size_t k = b - 1;
            while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
            left_ok = !is_word_char(unicode::next_cp(s, k));
          }
          if (e < s.size()) {
            size_t k = e;
            right_ok = !is_word_char(unicode::next_cp(s, k));
          }
          if (!left_ok || !right_ok) continue;
        }
        if (hit->lstrip) {
          size_t nb = b;
          while (nb > 0) {
            size_t k = nb - 1;
            while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
            size_t kk = k;
            if (!unicode::is_whitespace(unicode::next_cp(s, kk))) break;
            nb = k;
          }
          b = std::max(nb, start_offset);
        }
        if (hit->rstrip) {
          while (e < s.size()) {
            size_t k = e;
            if (!unicode::is_whitespace(unicode::next_cp(s, k))) break;
            e = k;
          }
          i = e;
        }
        if (start_offset < b) out.push_back({start_offset, b, nullptr});
        out.push_back({b, e, hit});
        start_offset = e;
      }
    }
    if (start_offset < s.size() || s.empty()) out.push_back({start_offset, s.size(), nullptr});
    return out;
  }

 private:
  std::array<std::vector<const AddedToken*>, 256> buckets_;
  bool empty_ = true;
};

std::optional<std::string> token_content(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content")) return j["content"].get<std::string>();
  return std::nullopt;
}

class HfTokenizer : public Tokenizer {
 public:
  HfTokenizer(const json& tj, const json& config) {
    if (!tj.is_object()) throw Error("tokenizer.json: not a JSON object");
    model_ = hf::make_model(tj.at("model"));
    normalizer_ = hf::make_normalizer(tj.value("normalizer", json()));
    pre_ = hf::make_pre_tokenizer(tj.value("pre_tokenizer", json()));
    decoder_ = hf::make_decoder(tj.value("decoder", json()));
    is_bpe_ = tj["model"].value("type", "") == "BPE" || (!tj["model"].contains("type") && tj["model"].contains("merges"));
    vocab_size_ = model_->vocab_size();

    const json added = tj.value("added_tokens", json::array());
    added_.reserve(added.size());
    for (const json& a : added) {
      const std::string content = a.at("content").get<std::string>();
      AddedToken t{a.at("id").get<int64_t>(), content, content, a.value("special", false),
                   a.value("single_word", false), a.value("lstrip", false), a.value("rstrip", false),
                   a.value("normalized", !a.value("special", false))};
      if (t.id < 0) throw Error("tokenizer.json: added token '" + t.content + "' has a negative id");
      added_.push_back(t);
      vocab_size_ = std::max(vocab_size_, t.id + 1);
    }
    for (AddedToken& t : added_) {
      by_id_[t.id] = &t;
      by_content_[t.content] = t.id;
      if (t.normalized && normalizer_) t.pattern = normalizer_->apply(t.content);
      by_content_[t.pattern] = t.id;
      (t.normalized ? normalized_matcher_ : raw_matcher_).add(&t);
    }

    const json cfg = config.is_object() ? config : json::object();
    auto id_of = [&](const char* key) -> std::optional<int64_t> {
      if (!cfg.contains(key)) return std::nullopt;
      auto c = token_content(cfg[key]);
      return c ? token_id(*c) : std::nullopt;
    };
    bos_ = id_of("bos_token");
    eos_ = id_of("eos_token");
    cleanup_ = cfg.value("clean_up_tokenization_spaces", false) && !is_bpe_;

    // transformers 5 rebuilds the post-processor from add_bos_token/add_eos_token when the config
    // names either, or when tokenizer.json has none.
    const json pp = tj.value("post_processor", json());
    if (cfg.contains("add_bos_token") || cfg.contains("add_eos_token") || pp.is_null()) {
      if (cfg.value("add_bos_token", false) && bos_) prefix_.push_back(*bos_);
      if (cfg.value("add_eos_token", false) && eos_) suffix_.push_back(*eos_);
    } else {
      parse_post_processor(pp);
    }
  }

  std::vector<int64_t> encode(const std::string& text, bool add_special) const override {
    std::vector<int64_t> ids;
    if (add_special) ids = prefix_;
    std::unordered_map<std::string, std::vector<int64_t>> cache;  // words repeat; the model is pure
    for (const auto& m : raw_matcher_.split(text)) {
      if (m.tok) {
        ids.push_back(m.tok->id);
        continue;
      }
      std::string chunk = text.substr(m.b, m.e - m.b);
      if (normalizer_) chunk = normalizer_->apply(std::move(chunk));
      for (const auto& n : normalized_matcher_.split(chunk)) {
        if (n.tok) {
          ids.push_back(n.tok->id);
          continue;
        }
        hf::Pieces pieces{{chunk.substr(n.b, n.e - n.b), m.b == 0 && n.b == 0}};
        if (pre_) pre_->apply(pieces);
        for (const hf::Piece& p : pieces) {
          auto [it, fresh] = cache.try_emplace(p.text);
          if (fresh) model_->tokenize(p.text, it->second);
          ids.insert(ids.end(), it->second.begin(), it->second.end());
        }
      }
    }
    if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int64_t id : ids) {
      if (skip_special && is_special(id)) continue;
      tokens.push_back(token(id));
    }
    std::string text;
    if (decoder_) {
      decoder_->decode_chain(tokens);
      for (const std::string& t : tokens) text += t;
    } else {
      for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
    }
    if (cleanup_) {  // transformers' clean_up_tokenization
      static const std::pair<const char*, const char*> kRules[] = {
          {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
          {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
      for (auto [from, to] : kRules) {
        std::string out;
        const std::string f = from;
        size_t pos = 0;
        for (size_t p = text.find(f); p != std::string::npos; p = text.find(f, pos)) {
          out.append(text, pos, p - pos);
          out += to;
          pos = p + f.size();
        }
        out.append(text, pos, std::string::npos);
        text = std::move(out);
      }
    }
    return text;
  }

  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int64_t> bos_id() const override { return bos_; }
  std::optional<int64_t> eos_id() const override { return eos_; }

  std::string token(int64_t id) const override {
    // HF keeps a normalized added token in its normalized spelling
    if (auto it = by_id_.find(id); it != by_id_.end()) return it->second->pattern;
    if (const std::string* t = model_->id_to_token(id)) return *t;
    throw Error("tokenizer: token id " + std::to_string(id) + " is out of range (vocab size " +
                std::to_string(vocab_size_) + ")");
  }

  std::optional<int64_t> token_id(const std::string& tok) const override {
    if (auto it = by_content_.find(tok); it != by_content_.end()) return it->second;
    return model_->token_to_id(tok);
  }

  bool is_special(int64_t id) const override {
    auto it = by_id_.find(id);
    return it != by_id_.end() && it->second->special;
  }

 private:
  std::vector<int64_t> special_ids(const json& pp, const json& item) const {
    // TemplateProcessing names a special token by id string, looked up in its special_tokens map.
    const std::string name = item.at("id").get<std::string>();
    const json& st = pp.at("special_tokens");
    if (!st.contains(name)) throw Error("tokenizer.json: post_processor special token '" + name + "' is not defined");
    return st[name].at("ids").get<std::vector<int64_t>>();
  }

  void parse_post_processor(const json& pp) {
    const std::string type = pp.value("type", "");
    if (type == "TemplateProcessing") {
      bool seen_a = false;
      std::vector<int64_t> pre, post;
      for (const json& item : pp.at("single")) {
        if (item.contains("Sequence")) {
          seen_a = true;
        } else if (item.contains("SpecialToken")) {
          auto ids = special_ids(pp, item["SpecialToken"]);
          (seen_a ? post : pre).insert((seen_a ? post : pre).end(), ids.begin(), ids.end());
        }
      }
      prefix_.insert(prefix_.begin(), pre.begin(), pre.end());
      suffix_.insert(suffix_.end(), post.begin(), post.end());
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      prefix_.insert(prefix_.begin(), pp.at("cls").at(1).get<int64_t>());
      suffix_.push_back(pp.at("sep").at(1).get<int64_t>());
    } else if (type == "Sequence") {
      for (const json& p : pp.at("processors")) parse_post_processor(p);
    } else if (type != "ByteLevel") {
      throw Error("tokenizer.json: post_processor type '" + type + "' is not supported");
    }
  }

  std::unique_ptr<hf::Model> model_;
  std::unique_ptr<hf::Normalizer> normalizer_;
  std::unique_ptr<hf::PreTokenizer> pre_;
  std::unique_ptr<hf::Decoder> decoder_;
  std::vector<AddedToken> added_;
  std::unordered_map<int64_t, const AddedToken*> by_id_;
  std::unordered_map<std::string, int64_t> by_content_;
  AddedMatcher raw_matcher_, normalized_matcher_;
  std::vector<int64_t> prefix_, suffix_;
  std::optional<int64_t> bos_, eos_;
  int64_t vocab_size_ = 0;
  bool is_bpe_ = false, cleanup_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> make_hf_tokenizer(const json& tokenizer_json, const json& tokenizer_config) {
  try {
    return std::make_unique<HfTokenizer>(tokenizer_json, tokenizer_config);
  } catch (const json::exception& e) {  // a field of the wrong JSON type or missing
    throw Error(std::string("tokenizer.json: malformed: ") + e.what());
  }
}

}  // namespace llmc::runtime
