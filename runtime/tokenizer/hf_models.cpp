// HF tokenizers models (tokenizers/src/models): BPE (merges by rank, byte fallback, unk fusing,
// ignore_merges), WordPiece (greedy longest match with "##") and WordLevel.
#include <queue>

#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/hf_components.hpp"
#include "runtime/tokenizer/unicode.hpp"

namespace llmc::runtime::hf {

using nlohmann::json;

namespace {

std::string opt_string(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? std::string() : it->get<std::string>();
}

// The vocabulary both ways; ids may have gaps (added tokens fill them).
class Vocab {
 public:
  explicit Vocab(const json& vocab, const std::string& what) {
    if (!vocab.is_object()) throw Error("tokenizer.json: " + what + " model.vocab is not an object");
    to_id_.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const int64_t id = it.value().get<int64_t>();
      if (id < 0) throw Error("tokenizer.json: " + what + " vocab entry '" + it.key() + "' has negative id");
      to_id_[it.key()] = id;
      if (static_cast<size_t>(id) >= tokens_.size()) {
        tokens_.resize(id + 1);
        present_.resize(id + 1, 0);
      }
      tokens_[id] = it.key();
      present_[id] = 1;
    }
  }
  std::optional<int64_t> find(const std::string& t) const {
    auto it = to_id_.find(t);
    return it == to_id_.end() ? std::nullopt : std::optional<int64_t>(it->second);
  }
  const std::string* token(int64_t id) const {
    return id >= 0 && static_cast<size_t>(id) < tokens_.size() && present_[id] ? &tokens_[id] : nullptr;
  }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }

 private:
  std::unordered_map<std::string, int64_t> to_id_;
  std::vector<std::string> tokens_;
  std::vector<char> present_;
};

class Bpe : public Model {
 public:
  explicit Bpe(const json& j)
      : vocab_(j.at("vocab"), "BPE"),
        unk_(opt_string(j, "unk_token")),
        prefix_(opt_string(j, "continuing_subword_prefix")),
        suffix_(opt_string(j, "end_of_word_suffix")),
        fuse_unk_(j.value("fuse_unk", false)),
        byte_fallback_(j.value("byte_fallback", false)),
        ignore_merges_(j.value("ignore_merges", false)) {
    if (j.contains("dropout") && !j["dropout"].is_null() && j["dropout"].get<double>() > 0)
      throw Error("tokenizer.json: BPE dropout is random; only dropout null/0 is supported");
    const json& merges = j.at("merges");
    merges_.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      std::string a, b;
      if (merges[r].is_string()) {
        const std::string m = merges[r].get<std::string>();
        const size_t sp = m.find(' ');
        if (sp == std::string::npos) throw Error("tokenizer.json: BPE merge " + std::to_string(r) + " '" + m + "' has no space");
        a = m.substr(0, sp);
        b = m.substr(sp + 1);
      } else {
        a = merges[r].at(0).get<std::string>();
        b = merges[r].at(1).get<std::string>();
      }
      const auto ia = vocab_.find(a), ib = vocab_.find(b);
      const std::string joined = a + (b.size() >= prefix_.size() ? b.substr(prefix_.size()) : std::string());
      const auto in = vocab_.find(joined);
      if (!ia || !ib || !in)
        throw Error("tokenizer.json: BPE merge " + std::to_string(r) + " '" + a + " " + b + "' uses a token not in the vocab");
      merges_[key(*ia, *ib)] = {static_cast<int64_t>(r), *in};
    }
    if (!unk_.empty() && !vocab_.find(unk_)) throw Error("tokenizer.json: BPE unk_token '" + unk_ + "' is not in the vocab");
  }

  void tokenize(const std::string& w, std::vector<int64_t>& out) const override {
    if (w.empty()) return;
    if (ignore_merges_)
      if (auto id = vocab_.find(w)) {
        out.push_back(*id);
        return;
      }
    std::vector<Sym> syms;
    int64_t pending_unk = -1;  // HF flushes a pending unk only before a known token
    auto add = [&](int64_t id) {
      const int prev = static_cast<int>(syms.size()) - 1;
      syms.push_back({id, prev, -1});
      if (prev >= 0) syms[prev].next = prev + 1;
    };
    for (size_t i = 0; i < w.size();) {
      const size_t at = i;
      unicode::next_cp(w, i);
      std::string s = w.substr(at, i - at);
      if (at > 0 && !prefix_.empty()) s = prefix_ + s;
      if (i == w.size() && !suffix_.empty()) s += suffix_;
      if (auto id = vocab_.find(s)) {
        if (pending_unk >= 0) add(pending_unk), pending_unk = -1;
        add(*id);
        continue;
      }
      if (byte_fallback_) {
        std::vector<int64_t> bytes;
        for (unsigned char b : s) {
          static const char* hex = "0123456789ABCDEF";
          const std::string code = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
          auto id = vocab_.find(code);
          if (!id) break;
          bytes.push_back(*id);
        }
        if (bytes.size() == s.size()) {
          for (int64_t id : bytes) add(id);
          continue;
        }
      }
      if (!unk_.empty()) {
        const int64_t unk = *vocab_.find(unk_);
        if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
        pending_unk = unk;
      }
    }
    if (pending_unk >= 0) add(pending_unk);
    merge_all(syms);
    for (int k = syms.empty() ? -1 : 0; k != -1; k = syms[k].next) out.push_back(syms[k].id);
  }

  std::optional<int64_t> token_to_id(const std::string& t) const override { return vocab_.find(t); }
  const std::string* id_to_token(int64_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return vocab_.size(); }

 private:
  struct Sym {
    int64_t id;
    int prev, next;
    bool dead = false;
  };
  struct MergeInfo {
    int64_t rank, new_id;
  };
  static uint64_t key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b); }

  // tokenizers' Word::merge_all: always the lowest-ranked pair, leftmost first among equals;
  // stale queue entries are recognized by the pair no longer producing the queued id.
  void merge_all(std::vector<Sym>& syms) const {
    struct Cand {
      int64_t rank;
      int pos;
      int64_t new_id;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> q;
    auto push = [&](int pos) {
      const int nx = syms[pos].next;
      if (nx < 0) return;
      auto it = merges_.find(key(syms[pos].id, syms[nx].id));
      if (it != merges_.end()) q.push({it->second.rank, pos, it->second.new_id});
    };
    for (int k = 0; k + 1 < static_cast<int>(syms.size()); ++k) push(k);
    while (!q.empty()) {
      const Cand c = q.top();
      q.pop();
      Sym& left = syms[c.pos];
      if (left.dead || left.next < 0) continue;
      Sym& right = syms[left.next];
      auto it = merges_.find(key(left.id, right.id));
      if (it == merges_.end() || it->second.new_id != c.new_id) continue;
      left.id = c.new_id;
      right.dead = true;
      left.next = right.next;
      if (right.next >= 0) syms[right.next].prev = c.pos;
      if (left.prev >= 0) push(left.prev);
      push(c.pos);
    }
  }

  Vocab vocab_;
  std::string unk_, prefix_, suffix_;
  bool fuse_unk_, byte_fallback_, ignore_merges_;
  std::unordered_map<uint64_t, MergeInfo> merges_;
};

class WordPiece : public Model {
 public:
  explicit WordPiece(const json& j)
      : vocab_(j.at("vocab"), "WordPiece"),
        unk_(j.value("unk_token", "[UNK]")),
        prefix_(j.value("continuing_subword_prefix", "##")),
        max_chars_(j.value("max_input_chars_per_word", size_t{100})) {
    auto u = vocab_.find(unk_);
    if (!u) throw Error("tokenizer.json: WordPiece unk_token '" + unk_ + "' is not in the vocab");
    unk_id_ = *u;
  }

  void tokenize(const std::string& w, std::vector<int64_t>& out) const override {
    size_t chars = 0;
    for (unsigned char c : w) chars += (c & 0xC0) != 0x80;
    if (chars > max_chars_) {
      out.push_back(unk_id_);
      return;
    }
    const size_t mark = out.size();
    for (size_t start = 0; start < w.size();) {
      size_t end = w.size();
      std::optional<int64_t> found;
      while (start < end) {
        std::string sub = start > 0 ? prefix_ + w.substr(start, end - start) : w.substr(start, end - start);
        if ((found = vocab_.find(sub))) break;
        do --end;  // back off one character
        while (end > start && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80);
      }
      if (!found) {
        out.resize(mark);
        out.push_back(unk_id_);
        return;
      }
      out.push_back(*found);
      start = end;
    }
  }

  std::optional<int64_t> token_to_id(const std::string& t) const override { return vocab_.find(t); }
  const std::string* id_to_token(int64_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return vocab_.size(); }

 private:
  Vocab vocab_;
  std::string unk_, prefix_;
  size_t max_chars_;
  int64_t unk_id_ = 0;
};

class WordLevel : public Model {
 public:
  explicit WordLevel(const json& j) : vocab_(j.at("vocab"), "WordLevel"), unk_(opt_string(j, "unk_token")) {}
  void tokenize(const std::string& w, std::vector<int64_t>& out) const override {
    if (auto id = vocab_.find(w)) out.push_back(*id);
    else if (auto u = vocab_.find(unk_)) out.push_back(*u);
    else throw Error("tokenizer: WordLevel has no unk_token in its vocab for '" + w + "'");
  }
  std::optional<int64_t> token_to_id(const std::string& t) const override { return vocab_.find(t); }
  const std::string* id_to_token(int64_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return vocab_.size(); }

 private:
  Vocab vocab_;
  std::string unk_;
};

}  // namespace

std::unique_ptr<Model> make_model(const json& j) {
  if (!j.is_object()) throw Error("tokenizer.json: 'model' is missing or not an object");
  std::string type = j.value("type", "");
  if (type.empty()) {  // older files leave the type out; the fields tell
    if (j.contains("merges")) type = "BPE";
    else if (j.contains("max_input_chars_per_word")) type = "WordPiece";
  }
  if (type == "BPE") return std::make_unique<Bpe>(j);
  if (type == "WordPiece") return std::make_unique<WordPiece>(j);
  if (type == "WordLevel") return std::make_unique<WordLevel>(j);
  throw Error("tokenizer.json: model type '" + type + "' is not supported (BPE, WordPiece, WordLevel)");
}

}  // namespace llmc::runtime::hf
