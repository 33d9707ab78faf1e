#include "data/verification/pickle_pack.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "framework/core/error.h"

namespace facetrain::data {
namespace {

// The few Python values a verification pack is made of.
struct Value;
// Values live in the unpickler's arena and point at each other without owning: a pickle may
// build cycles (a list appended to itself through the memo) or nest a million deep, neither of
// which may leak or recurse.
using ValuePtr = Value*;
struct Value {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kBytes,
    kStr,
    kList,
    kTuple,
    kGlobal,
    kDtype,
    kArray,
    kMark
  };
  Kind kind = Kind::kNone;
  std::int64_t integer = 0;         // kBool, kInt
  std::string text;                 // kBytes, kStr (UTF-8), kGlobal ("module name"), kDtype
  std::vector<ValuePtr> items;      // kList, kTuple
  char byte_order = '|';            // kDtype
  ValuePtr dtype = nullptr;         // kArray
  std::vector<std::int64_t> shape;  // kArray
};

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kBytes:
      return "bytes";
    case Value::Kind::kStr:
      return "str";
    case Value::Kind::kList:
      return "list";
    case Value::Kind::kTuple:
      return "tuple";
    case Value::Kind::kGlobal:
      return "global";
    case Value::Kind::kDtype:
      return "numpy.dtype";
    case Value::Kind::kArray:
      return "numpy.ndarray";
    case Value::Kind::kMark:
      return "mark";
  }
  return "?";
}

bool allowed_global(const std::string& g) {
  static const char* const kAllowed[] = {"numpy.core.multiarray _reconstruct",
                                         "numpy._core.multiarray _reconstruct",
                                         "numpy ndarray",
                                         "numpy dtype",
                                         "numpy.core.multiarray scalar",
                                         "numpy._core.multiarray scalar",
                                         "numpy.core.numeric _frombuffer",
                                         "numpy._core.numeric _frombuffer",
                                         "_codecs encode"};
  for (const char* a : kAllowed) {
    if (g == a) return true;
  }
  return false;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The pickle machine, limited to building Values.
class Unpickler {
 public:
  Unpickler(const std::vector<std::uint8_t>& bytes, const std::string& source)
      : b_(bytes), source_(source) {}

  ValuePtr run() {
    while (true) {
      if (pos_ >= b_.size())
        fail(pos_, "the file ends before the pickle's STOP opcode (truncated)");
      op_pos_ = pos_;
      const std::uint8_t op = b_[pos_++];
      switch (op) {
        case 0x80:
          take(1);
          break;  // PROTO
        case 0x95:
          take(8);
          break;     // FRAME
        case '.': {  // STOP
          if (stack_.size() != 1)
            fail(op_pos_, fmt::format("STOP with {} values on the stack", stack_.size()));
          return stack_.back();
        }
        case '(':
          push(make(Value::Kind::kMark));
          break;
        case ']':
          push(make(Value::Kind::kList));
          break;
        case ')':
          push(make(Value::Kind::kTuple));
          break;
        case 'l': {
          auto v = make(Value::Kind::kList);
          v->items = pop_mark();
          push(v);
          break;
        }
        case 't': {
          auto v = make(Value::Kind::kTuple);
          v->items = pop_mark();
          push(v);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          const std::size_t n = op - 0x84;
          if (stack_.size() < n) fail(op_pos_, "TUPLE with too few values on the stack");
          auto v = make(Value::Kind::kTuple);
          v->items.assign(stack_.end() - static_cast<long>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(v);
          break;
        }
        case 'a': {  // APPEND
          auto item = pop();
          list_on_top("APPEND")->items.push_back(item);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          auto list = list_on_top("APPENDS");
          list->items.insert(list->items.end(), items.begin(), items.end());
          break;
        }
        case 'N':
          push(make(Value::Kind::kNone));
          break;
        case 0x88:
        case 0x89: {
          auto v = make(Value::Kind::kBool);
          v->integer = op == 0x88;
          push(v);
          break;
        }
        case 'J':
          push_int(static_cast<std::int32_t>(le(4)));
          break;
        case 'K':
          push_int(static_cast<std::int64_t>(le(1)));
          break;
        case 'M':
          push_int(static_cast<std::int64_t>(le(2)));
          break;
        case 0x8a: {  // LONG1
          const std::size_t n = static_cast<std::size_t>(le(1));
          if (n > 8) fail(op_pos_, fmt::format("LONG1 of {} bytes (at most 8 supported)", n));
          std::uint64_t u = n > 0 ? le(n) : 0;
          if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~std::uint64_t{0} << (8 * n);
          push_int(static_cast<std::int64_t>(u));
          break;
        }
        case 'I': {  // INT (protocol 0; "01"/"00" are True/False)
          const std::string line = read_line();
          if (line == "01" || line == "00") {
            auto v = make(Value::Kind::kBool);
            v->integer = line == "01";
            push(v);
          } else {
            try {
              push_int(std::stoll(line));
            } catch (const std::exception&) {
              fail(op_pos_, fmt::format("INT '{}' is not an integer", line));
            }
          }
          break;
        }
        case 'B':
          push_bytes(Value::Kind::kBytes, le(4));
          break;
        case 'C':
          push_bytes(Value::Kind::kBytes, le(1));
          break;
        case 0x8e:
          push_bytes(Value::Kind::kBytes, le(8));
          break;
        case 0x96:
          push_bytes(Value::Kind::kBytes, le(8));
          break;  // BYTEARRAY8
        case 'T':
          push_bytes(Value::Kind::kBytes, le(4));
          break;  // BINSTRING (Python 2 str)
        case 'U':
          push_bytes(Value::Kind::kBytes, le(1));
          break;  // SHORT_BINSTRING
        case 'X':
          push_bytes(Value::Kind::kStr, le(4));
          break;
        case 0x8c:
          push_bytes(Value::Kind::kStr, le(1));
          break;
        case 0x8d:
          push_bytes(Value::Kind::kStr, le(8));
          break;
        case 'q':
          memo_[le(1)] = top("BINPUT");
          break;
        case 'r':
          memo_[le(4)] = top("LONG_BINPUT");
          break;
        case 'p':
          memo_[parse_index(read_line())] = top("PUT");
          break;
        case 0x94:
          memo_[memo_.size()] = top("MEMOIZE");
          break;
        case 'h':
          push(get(le(1)));
          break;
        case 'j':
          push(get(le(4)));
          break;
        case 'g':
          push(get(parse_index(read_line())));
          break;
        case '0':
          pop();
          break;
        case '1':
          pop_mark();
          break;
        case '2':
          push(top("DUP"));
          break;
        case 'c': {  // GLOBAL
          const std::string module = read_line();
          const std::string name = read_line();
          push_global(module + " " + name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop();
          auto module = pop();
          if (module->kind != Value::Kind::kStr || name->kind != Value::Kind::kStr) {
            fail(op_pos_, "STACK_GLOBAL needs two strings");
          }
          push_global(module->text + " " + name->text);
          break;
        }
        case 'R':
          reduce();
          break;
        case 'b':
          build();
          break;
        default:
          fail(op_pos_,
               fmt::format(
                   "opcode 0x{:02x}{} is not one a verification pack uses", op,
                   op >= 0x20 && op < 0x7f ? fmt::format(" ('{}')", static_cast<char>(op)) : ""));
      }
    }
  }

 private:
  [[noreturn]] void fail(std::size_t at, const std::string& what) const {
    throw DataError(fmt::format("{}: byte {}: {}", source_, at, what));
  }

  const std::uint8_t* take(std::size_t n) {
    if (n > b_.size() - pos_) {
      fail(op_pos_, fmt::format("needs {} more bytes but the file ends after {} (truncated)", n,
                                b_.size() - pos_));
    }
    const std::uint8_t* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::uint64_t le(std::size_t n) {
    const std::uint8_t* p = take(n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
  }
  std::string read_line() {
    const std::size_t start = pos_;
    while (pos_ < b_.size() && b_[pos_] != '\n') ++pos_;
    if (pos_ >= b_.size()) fail(op_pos_, "the file ends inside a text argument (truncated)");
    std::string s(reinterpret_cast<const char*>(b_.data() + start), pos_ - start);
    ++pos_;
    return s;
  }
  std::uint64_t parse_index(const std::string& s) {
    try {
      return std::stoull(s);
    } catch (const std::exception&) {
      fail(op_pos_, fmt::format("memo index '{}' is not a number", s));
    }
  }

  void push(ValuePtr v) { stack_.push_back(v); }
  ValuePtr make(Value::Kind kind) {
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = kind;
    return arena_.back().get();
  }
  void push_int(std::int64_t i) {
    auto v = make(Value::Kind::kInt);
    v->integer = i;
    push(v);
  }
  void push_bytes(Value::Kind kind, std::uint64_t n) {
    auto v = make(kind);
    const std::uint8_t* p = take(static_cast<std::size_t>(n));
    v->text.assign(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    push(v);
  }
  void push_global(const std::string& g) {
    if (!allowed_global(g)) {
      fail(op_pos_, fmt::format("global '{}' is not allowed (a verification pack holds only bytes, "
                                "bools and numpy arrays; nothing is executed)",
                                g));
    }
    auto v = make(Value::Kind::kGlobal);
    v->text = g;
    push(v);
  }
  ValuePtr pop() {
    if (stack_.empty() || stack_.back()->kind == Value::Kind::kMark) {
      fail(op_pos_, "pops from an empty stack");
    }
    auto v = stack_.back();
    stack_.pop_back();
    return v;
  }
  ValuePtr top(const char* op) {
    if (stack_.empty()) fail(op_pos_, fmt::format("{} on an empty stack", op));
    return stack_.back();
  }
  ValuePtr get(std::uint64_t i) {
    auto it = memo_.find(i);
    if (it == memo_.end()) fail(op_pos_, fmt::format("memo entry {} was never stored", i));
    return it->second;
  }
  std::vector<ValuePtr> pop_mark() {
    std::size_t k = stack_.size();
    while (k > 0 && stack_[k - 1]->kind != Value::Kind::kMark) --k;
    if (k == 0) fail(op_pos_, "no MARK on the stack");
    std::vector<ValuePtr> items(stack_.begin() + static_cast<long>(k), stack_.end());
    stack_.resize(k - 1);
    return items;
  }
  ValuePtr list_on_top(const char* op) {
    auto list = top(op);
    if (list->kind != Value::Kind::kList) {
      fail(op_pos_, fmt::format("{} onto a {}, expected a list", op, kind_name(list->kind)));
    }
    return list;
  }

  // Only the whitelisted callables, each rebuilt here from its arguments.
  void reduce() {
    auto args = pop();
    auto callable = pop();
    if (callable->kind != Value::Kind::kGlobal || args->kind != Value::Kind::kTuple) {
      fail(op_pos_, fmt::format("REDUCE of a {} with a {}", kind_name(callable->kind),
                                kind_name(args->kind)));
    }
    const std::string& g = callable->text;
    const auto& a = args->items;
    auto bad = [&] { fail(op_pos_, fmt::format("REDUCE: unexpected arguments to '{}'", g)); };
    if (ends_with(g, " _reconstruct")) {
      // _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills.
      if (a.size() != 3 || a[0]->kind != Value::Kind::kGlobal || a[0]->text != "numpy ndarray") {
        bad();
      }
      push(make(Value::Kind::kArray));
    } else if (g == "numpy dtype") {
      if (a.empty() || a[0]->kind != Value::Kind::kStr) bad();
      auto v = make(Value::Kind::kDtype);
      v->text = a[0]->text;
      push(v);
    } else if (ends_with(g, " scalar")) {
      // numpy scalar (dtype, raw bytes): bools and little-endian integers.
      if (a.size() != 2 || a[0]->kind != Value::Kind::kDtype || a[1]->kind != Value::Kind::kBytes)
        bad();
      auto v = make(a[0]->text == "b1" ? Value::Kind::kBool : Value::Kind::kInt);
      v->integer = integer_at(*a[0], a[1]->text, 0);
      push(v);
    } else if (ends_with(g, " _frombuffer")) {
      // _frombuffer(buffer, dtype, shape, order)
      if (a.size() != 4 || a[0]->kind != Value::Kind::kBytes || a[1]->kind != Value::Kind::kDtype ||
          a[2]->kind != Value::Kind::kTuple) {
        bad();
      }
      auto v = make(Value::Kind::kArray);
      v->dtype = a[1];
      v->shape = ints(a[2]->items);
      v->text = a[0]->text;
      push(v);
    } else if (g == "_codecs encode") {
      // encode(str, 'latin1'): the str's code points (< 256) are the bytes.
      if (a.size() != 2 || a[0]->kind != Value::Kind::kStr || a[1]->kind != Value::Kind::kStr ||
          (a[1]->text != "latin1" && a[1]->text != "latin-1")) {
        bad();
      }
      auto v = make(Value::Kind::kBytes);
      v->text = utf8_to_latin1(a[0]->text);
      push(v);
    } else {
      fail(op_pos_, fmt::format("REDUCE of '{}' is not supported", g));
    }
  }

  // BUILD sets a dtype's byte order or an array's shape, dtype and data.
  void build() {
    auto state = pop();
    auto obj = top("BUILD");
    if (obj->kind == Value::Kind::kDtype && state->kind == Value::Kind::kTuple &&
        state->items.size() >= 2 && state->items[1]->kind == Value::Kind::kStr) {
      obj->byte_order = state->items[1]->text.empty() ? '|' : state->items[1]->text[0];
      return;
    }
    if (obj->kind == Value::Kind::kArray && state->kind == Value::Kind::kTuple &&
        state->items.size() == 5 && state->items[1]->kind == Value::Kind::kTuple &&
        state->items[2]->kind == Value::Kind::kDtype &&
        state->items[4]->kind == Value::Kind::kBytes) {
      obj->shape = ints(state->items[1]->items);
      obj->dtype = state->items[2];
      obj->text = state->items[4]->text;
      return;
    }
    fail(op_pos_, fmt::format("BUILD of a {} with a {} is not a numpy array or dtype state",
                              kind_name(obj->kind), kind_name(state->kind)));
  }

  std::vector<std::int64_t> ints(const std::vector<ValuePtr>& items) {
    std::vector<std::int64_t> out;
    for (const auto& i : items) {
      if (i->kind != Value::Kind::kInt) fail(op_pos_, "array shape holds a non-integer");
      out.push_back(i->integer);
    }
    return out;
  }

  std::int64_t integer_at(const Value& dtype, const std::string& data, std::size_t index) {
    const std::string& t = dtype.text;
    if (dtype.byte_order == '>' || t.size() != 2 || (t[0] != 'b' && t[0] != 'u' && t[0] != 'i') ||
        (t[1] != '1' && t[1] != '2' && t[1] != '4' && t[1] != '8')) {
      fail(op_pos_, fmt::format("numpy dtype '{}{}' where bool or a little-endian integer was "
                                "expected",
                                dtype.byte_order, t));
    }
    const std::size_t w = static_cast<std::size_t>(t[1] - '0');
    if ((index + 1) * w > data.size()) fail(op_pos_, "numpy data shorter than its shape");
    std::uint64_t u = 0;
    for (std::size_t i = 0; i < w; ++i) {
      u |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(data[index * w + i])) << (8 * i);
    }
    if (t[0] == 'i' && w < 8 && ((u >> (8 * w - 1)) & 1)) u |= ~std::uint64_t{0} << (8 * w);
    return static_cast<std::int64_t>(u);
  }

  std::string utf8_to_latin1(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<std::uint8_t>(s[i]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c & 0xe0) == 0xc0 && i + 1 < s.size() && c <= 0xc3) {
        out += static_cast<char>(((c & 0x1f) << 6) | (static_cast<std::uint8_t>(s[++i]) & 0x3f));
      } else {
        fail(op_pos_, "latin-1 encode of a character above U+00FF");
      }
    }
    return out;
  }

 public:
  // Flags of an issame value: a list/tuple of bools or ints, or a numpy array.
  std::vector<std::uint8_t> flags(const Value& v) {
    std::vector<std::uint8_t> out;
    if (v.kind == Value::Kind::kList || v.kind == Value::Kind::kTuple) {
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        const auto& item = *v.items[i];
        if (item.kind != Value::Kind::kBool && item.kind != Value::Kind::kInt) {
          throw DataError(fmt::format("{}: issame_list[{}] is a {}, expected a bool", source_, i,
                                      kind_name(item.kind)));
        }
        out.push_back(item.integer != 0);
      }
    } else if (v.kind == Value::Kind::kArray && v.dtype && v.shape.size() == 1) {
      for (std::int64_t i = 0; i < v.shape[0]; ++i) {
        out.push_back(integer_at(*v.dtype, v.text, static_cast<std::size_t>(i)) != 0);
      }
    } else {
      throw DataError(
          fmt::format("{}: issame_list is a {}, expected a list of bools or a 1-D "
                      "numpy array",
                      source_, kind_name(v.kind)));
    }
    return out;
  }

  // Bytes of image i: a bytes object or a uint8 array with one dimension of length > 1 (packs
  // hold (L,) or (L, 1) arrays), whose elements are the bytes in order in either memory layout.
  std::vector<std::uint8_t> image(const Value& v, std::size_t i) {
    if (v.kind == Value::Kind::kArray) {
      std::int64_t elements = 1, long_dims = 0;
      for (auto d : v.shape) elements *= d, long_dims += d > 1;
      if (!v.dtype || (v.dtype->text != "u1" && v.dtype->text != "i1") || long_dims > 1 ||
          static_cast<std::size_t>(elements) != v.text.size()) {
        throw DataError(fmt::format(
            "{}: bins[{}] is a numpy array of dtype {} and shape ({}) "
            "with {} data bytes, expected uint8 of shape (L,) or (L, 1) "
            "holding the image's bytes",
            source_, i, v.dtype ? v.dtype->text : "?", fmt::join(v.shape, ", "), v.text.size()));
      }
    } else if (v.kind != Value::Kind::kBytes) {
      throw DataError(fmt::format("{}: bins[{}] is a {}, expected bytes or a uint8 numpy array",
                                  source_, i, kind_name(v.kind)));
    }
    return {v.text.begin(), v.text.end()};
  }

 private:
  const std::vector<std::uint8_t>& b_;
  std::string source_;
  std::size_t pos_ = 0;
  std::size_t op_pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::map<std::uint64_t, ValuePtr> memo_;
  std::vector<std::unique_ptr<Value>> arena_;  // every value made, freed with the unpickler
};

}  // namespace

PickledPack parse_pickle_pack(const std::vector<std::uint8_t>& bytes, const std::string& source) {
  Unpickler unpickler(bytes, source);
  const Value* root = unpickler.run();
  if ((root->kind != Value::Kind::kTuple && root->kind != Value::Kind::kList) ||
      root->items.size() != 2) {
    throw DataError(
        fmt::format("{}: the pickle holds a {} of {} items, expected a pair "
                    "(bins, issame_list)",
                    source, kind_name(root->kind), root->items.size()));
  }
  const Value& bins = *root->items[0];
  if (bins.kind != Value::Kind::kList && bins.kind != Value::Kind::kTuple) {
    throw DataError(
        fmt::format("{}: bins is a {}, expected a list of images", source, kind_name(bins.kind)));
  }
  PickledPack pack;
  pack.issame = unpickler.flags(*root->items[1]);
  if (bins.items.size() != 2 * pack.issame.size()) {
    throw DataError(fmt::format("{}: {} images for {} issame flags, expected {} (two per pair)",
                                source, bins.items.size(), pack.issame.size(),
                                2 * pack.issame.size()));
  }
  // Each image's bytes are in the file at least once; more in total means objects referenced
  // many times (a memo bomb), which would be copied as many times.
  std::size_t total = 0;
  for (const auto& item : bins.items) total += item->text.size();
  if (total > bytes.size()) {
    throw DataError(
        fmt::format("{}: the {} images hold {} bytes in all, more than the file's {}: "
                    "images are repeated by reference, which no pack does",
                    source, bins.items.size(), total, bytes.size()));
  }
  for (std::size_t i = 0; i < bins.items.size(); ++i) {
    pack.images.push_back(unpickler.image(*bins.items[i], i));
  }
  return pack;
}

}  // namespace facetrain::data
