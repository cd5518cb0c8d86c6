#include "formats/npy.hpp"

#include <cstring>

namespace llmc::formats {

namespace {

std::string descr(DType t) {
  switch (t) {
    case DType::F32: return "<f4";
    case DType::F64: return "<f8";
    case DType::F16: return "<f2";
    case DType::I64: return "<i8";
    case DType::I32: return "<i4";
    case DType::I8: return "|i1";
    case DType::U8: return "|u1";
    case DType::Bool: return "|b1";
    default: throw Error("npy: dtype " + dtype_name(t) + " has no NumPy equivalent", ErrorKind::Runtime);
  }
}

std::string header(DType t, const Shape& s) {
  std::string shape = "(";
  for (size_t i = 0; i < s.size(); ++i) shape += std::to_string(s[i]) + (s.size() == 1 || i + 1 < s.size() ? "," : "");
  shape += ")";
  std::string h = "{'descr': '" + descr(t) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  uint16_t len = static_cast<uint16_t>(h.size());
  out.append(reinterpret_cast<const char*>(&len), 2);
  return out + h;
}

}  // namespace

NpyWriter::NpyWriter(const std::string& path, DType dtype, const Shape& shape)
    : path_(path), dtype_(dtype), expected_(shape_numel(shape)), out_(std::make_unique<AtomicWriter>(path)) {
  std::string h = header(dtype, shape);
  out_->write(h.data(), h.size());
}

void NpyWriter::append(const Tensor& chunk) {
  if (chunk.dtype() != dtype_) throw Error(path_ + ": npy chunk has dtype " + dtype_name(chunk.dtype()), ErrorKind::Runtime);
  if (written_ + chunk.numel() > expected_) throw Error(path_ + ": more data than the declared npy shape", ErrorKind::Runtime);
  out_->write(chunk.raw(), chunk.nbytes());
  written_ += chunk.numel();
}

void NpyWriter::commit() {
  if (written_ != expected_)
    throw Error(path_ + ": npy holds " + std::to_string(written_) + " of " + std::to_string(expected_) + " elements",
                ErrorKind::Runtime);
  out_->commit();
}

void write_npy(const std::string& path, const Tensor& t) {
  NpyWriter w(path, t.dtype(), t.shape());
  w.append(t);
  w.commit();
}

Tensor read_npy(const std::string& path) {
  auto f = MappedFile::open(path);
  const uint8_t* p = f->data();
  if (f->size() < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) throw Error(path + ": not a .npy file");
  size_t hlen, off;
  if (p[6] == 1) {
    hlen = p[8] | (p[9] << 8);
    off = 10;
  } else {
    if (f->size() < 12) throw Error(path + ": truncated .npy header");
    uint32_t l;
    std::memcpy(&l, p + 8, 4);
    hlen = l;
    off = 12;
  }
  if (off + hlen > f->size()) throw Error(path + ": .npy header runs past the end of the file");
  std::string h(reinterpret_cast<const char*>(p + off), hlen);
  auto field = [&](const std::string& key) {
    auto k = h.find("'" + key + "'");
    if (k == std::string::npos) throw Error(path + ": .npy header lacks '" + key + "'");
    return h.substr(h.find(':', k) + 1);
  };
  std::string d = field("descr");
  d = d.substr(d.find('\'') + 1);
  d = d.substr(0, d.find('\''));
  DType dt;
  if (d == "<f4") dt = DType::F32;
  else if (d == "<f8") dt = DType::F64;
  else if (d == "<f2") dt = DType::F16;
  else if (d == "<i8") dt = DType::I64;
  else if (d == "<i4") dt = DType::I32;
  else if (d == "|i1") dt = DType::I8;
  else if (d == "|u1") dt = DType::U8;
  else if (d == "|b1") dt = DType::Bool;
  else throw Error(path + ": unsupported .npy dtype '" + d + "'");
  if (field("fortran_order").find("True") < field("fortran_order").find(',')) throw Error(path + ": Fortran-order .npy is not supported");
  std::string s = field("shape");
  s = s.substr(s.find('(') + 1, s.find(')') - s.find('(') - 1);
  Shape shape;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t c = s.find(',', pos);
    std::string tok = s.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    if (tok.find_first_not_of(' ') != std::string::npos) shape.push_back(std::stoll(tok));
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  Tensor t(dt, shape);
  if (off + hlen + t.nbytes() > f->size()) throw Error(path + ": .npy data is shorter than its shape " + shape_str(shape));
  std::memcpy(t.mutable_raw(), p + off + hlen, t.nbytes());
  return t;
}

}  // namespace llmc::formats
