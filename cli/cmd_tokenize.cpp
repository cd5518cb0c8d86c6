// llmcompress tokenize: a text file to the model's token ids, written as eval --tokens and
// compress --calib-tokens read them (whitespace-separated), so that a machine without the
// tokenizer's Unicode tables (a build without ICU) can score or calibrate on exactly these ids.
#include <cstdio>
#include <string>

#include "cli/common.hpp"
#include "formats/mapped_file.hpp"
#include "runtime/loader.hpp"
#include "runtime/tokenizer/tokenizer.hpp"

namespace llmc::cli {

int cmd_tokenize(int argc, char** argv) {
  cxxopts::Options o("llmcompress tokenize", "Token ids of a text file, one line of whitespace-separated ids");
  o.add_options()("model", "model path (its tokenizer)", cxxopts::value<std::string>())(
      "data", "text file to tokenize", cxxopts::value<std::string>())(
      "o,output", "ids file to write (atomically)", cxxopts::value<std::string>())("h,help", "show help");
  o.parse_positional({"model"});
  o.positional_help("MODEL");
  auto a = parse(o, argc, argv);
  if (!a.count("model")) throw Error("missing MODEL (see --help)", ErrorKind::Usage);
  if (!a.count("data") || !a.count("output")) throw Error("give --data FILE and -o FILE", ErrorKind::Usage);
  const std::string data = a["data"].as<std::string>(), out = a["output"].as<std::string>();
  const std::string text = formats::read_text_file(data);
  if (text.empty()) throw Error(data + ": data file is empty");
  const Model model = runtime::load_model(a["model"].as<std::string>());
  const std::vector<int64_t> ids = runtime::load_tokenizer(model)->encode(text, false);
  std::string body;
  body.reserve(ids.size() * 6);
  for (size_t i = 0; i < ids.size(); ++i) {
    body += std::to_string(ids[i]);
    body += (i + 1) % 32 == 0 || i + 1 == ids.size() ? '\n' : ' ';
  }
  formats::AtomicWriter w(out);
  w.write(body.data(), body.size());
  w.commit();
  std::printf("%s: %zu ids from %s (%zu bytes)\n", out.c_str(), ids.size(), data.c_str(), text.size());
  return 0;
}

}  // namespace llmc::cli
