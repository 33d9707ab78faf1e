#include "data/verification/pickle_pack.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "framework/core/checked.h"
#include "framework/core/error.h"
#include "framework/core/strings.h"
#include "framework/serialization/unpickler.h"

namespace facetrain::data {
namespace {

using serialization::is_object;
using serialization::PyValue;
using serialization::Unpickler;
using Kind = PyValue::Kind;

constexpr const char* kDtype = "numpy.dtype";
constexpr const char* kArray = "numpy.ndarray";

// What a verification pack holds beyond plain data: numpy arrays and dtypes (as numpy pickles
// them: _reconstruct + BUILD, or _frombuffer), numpy scalars, and bytes pickled by Python 2 as
// _codecs.encode(str, 'latin1'). A dtype is an object with `data` its code ("u1") and
// `ints` {byte order}; an array has `items` {dtype}, `ints` its shape and `data` its bytes.
class PackVocabulary : public serialization::PickleVocabulary {
 public:
  std::string format() const override { return "a verification pack"; }

  bool allows(const std::string& g) const override {
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

  // Only the whitelisted callables, each rebuilt here from its arguments.
  PyValue* reduce(Unpickler& u, const PyValue& callable, const PyValue& args) override {
    const std::string& g = callable.text;
    const auto& a = args.items;
    auto bad = [&] { u.fail(fmt::format("REDUCE: unexpected arguments to '{}'", g)); };
    if (ends_with(g, " _reconstruct")) {
      // _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills.
      if (a.size() != 3 || a[0]->kind != Kind::kGlobal || a[0]->text != "numpy ndarray") bad();
      return object(u, kArray);
    }
    if (g == "numpy dtype") {
      if (a.empty() || a[0]->kind != Kind::kStr) bad();
      PyValue* v = object(u, kDtype);
      v->data = a[0]->text;
      v->ints = {'|'};
      return v;
    }
    if (ends_with(g, " scalar")) {
      // numpy scalar (dtype, raw bytes): bools and little-endian integers.
      if (a.size() != 2 || !is_object(*a[0], kDtype) || a[1]->kind != Kind::kBytes) bad();
      PyValue* v = u.make(a[0]->data == "b1" ? Kind::kBool : Kind::kInt);
      v->integer = integer_at(u, *a[0], a[1]->text, 0);
      return v;
    }
    if (ends_with(g, " _frombuffer")) {
      // _frombuffer(buffer, dtype, shape, order)
      if (a.size() != 4 || a[0]->kind != Kind::kBytes || !is_object(*a[1], kDtype) ||
          a[2]->kind != Kind::kTuple) {
        bad();
      }
      PyValue* v = object(u, kArray);
      v->items = {a[1]};
      v->ints = ints(u, a[2]->items);
      v->data = a[0]->text;
      return v;
    }
    if (g == "_codecs encode") {
      // encode(str, 'latin1'): the str's code points (< 256) are the bytes.
      if (a.size() != 2 || a[0]->kind != Kind::kStr || a[1]->kind != Kind::kStr ||
          (a[1]->text != "latin1" && a[1]->text != "latin-1")) {
        bad();
      }
      PyValue* v = u.make(Kind::kBytes);
      v->text = utf8_to_latin1(u, a[0]->text);
      return v;
    }
    u.fail(fmt::format("REDUCE of '{}' is not supported", g));
  }

  // BUILD sets a dtype's byte order or an array's shape, dtype and data.
  void build(Unpickler& u, PyValue& obj, const PyValue& state) override {
    if (is_object(obj, kDtype) && state.kind == Kind::kTuple && state.items.size() >= 2 &&
        state.items[1]->kind == Kind::kStr) {
      obj.ints = {state.items[1]->text.empty() ? '|' : state.items[1]->text[0]};
      return;
    }
    if (is_object(obj, kArray) && state.kind == Kind::kTuple && state.items.size() == 5 &&
        state.items[1]->kind == Kind::kTuple && is_object(*state.items[2], kDtype) &&
        state.items[4]->kind == Kind::kBytes) {
      obj.ints = ints(u, state.items[1]->items);
      obj.items = {state.items[2]};
      obj.data = state.items[4]->text;
      return;
    }
    u.fail(fmt::format("BUILD of a {} with a {} is not a numpy array or dtype state",
                       serialization::kind_name(obj), serialization::kind_name(state)));
  }

  // Element `index` of `data` as an integer of numpy dtype `dtype` (bool or little-endian int).
  static std::int64_t integer_at(Unpickler& u, const PyValue& dtype, const std::string& data,
                                 std::size_t index) {
    const std::string& t = dtype.data;
    const char order = dtype.ints.empty() ? '|' : static_cast<char>(dtype.ints[0]);
    if (order == '>' || t.size() != 2 || (t[0] != 'b' && t[0] != 'u' && t[0] != 'i') ||
        (t[1] != '1' && t[1] != '2' && t[1] != '4' && t[1] != '8')) {
      u.fail(fmt::format("numpy dtype '{}{}' where bool or a little-endian integer was expected",
                         order, t));
    }
    const auto w = static_cast<std::size_t>(t[1] - '0');
    if ((index + 1) * w > data.size()) u.fail("numpy data shorter than its shape");
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < w; ++i) {
      v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(data[index * w + i])) << (8 * i);
    }
    if (t[0] == 'i' && w < 8 && ((v >> (8 * w - 1)) & 1)) v |= ~std::uint64_t{0} << (8 * w);
    return static_cast<std::int64_t>(v);
  }

 private:
  static PyValue* object(Unpickler& u, const char* type) {
    PyValue* v = u.make(Kind::kObject);
    v->text = type;
    return v;
  }

  static std::vector<std::int64_t> ints(Unpickler& u, const std::vector<PyValue*>& items) {
    std::vector<std::int64_t> out;
    for (const auto* i : items) {
      if (i->kind != Kind::kInt) u.fail("array shape holds a non-integer");
      out.push_back(i->integer);
    }
    return out;
  }

  static std::string utf8_to_latin1(Unpickler& u, const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<std::uint8_t>(s[i]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c & 0xe0) == 0xc0 && i + 1 < s.size() && c <= 0xc3) {
        out += static_cast<char>(((c & 0x1f) << 6) | (static_cast<std::uint8_t>(s[++i]) & 0x3f));
      } else {
        u.fail("latin-1 encode of a character above U+00FF");
      }
    }
    return out;
  }
};

// Flags of an issame value: a list/tuple of bools or ints, or a numpy array.
std::vector<std::uint8_t> flags(Unpickler& u, const PyValue& v, const std::string& source) {
  std::vector<std::uint8_t> out;
  if (v.kind == Kind::kList || v.kind == Kind::kTuple) {
    for (std::size_t i = 0; i < v.items.size(); ++i) {
      const auto& item = *v.items[i];
      if (item.kind != Kind::kBool && item.kind != Kind::kInt) {
        throw DataError(fmt::format("{}: issame_list[{}] is a {}, expected a bool", source, i,
                                    serialization::kind_name(item)));
      }
      out.push_back(item.integer != 0);
    }
  } else if (is_object(v, kArray) && !v.items.empty() && v.ints.size() == 1) {
    for (std::int64_t i = 0; i < v.ints[0]; ++i) {
      out.push_back(
          PackVocabulary::integer_at(u, *v.items[0], v.data, static_cast<std::size_t>(i)) != 0);
    }
  } else {
    throw DataError(
        fmt::format("{}: issame_list is a {}, expected a list of bools or a 1-D numpy array",
                    source, serialization::kind_name(v)));
  }
  return out;
}

// Bytes of image i: a bytes object or a uint8 array with one dimension of length > 1 (packs
// hold (L,) or (L, 1) arrays), whose elements are the bytes in order in either memory layout.
const std::string& image_bytes(const PyValue& v, std::size_t i, const std::string& source) {
  if (is_object(v, kArray)) {
    std::int64_t elements = 1, long_dims = 0;
    bool valid = true;
    for (auto d : v.ints) {
      const auto grown = valid && d >= 0 ? checked::try_mul(elements, d) : std::nullopt;
      valid = grown.has_value();
      elements = grown.value_or(0);
      long_dims += d > 1;
    }
    const std::string dtype = v.items.empty() ? "?" : v.items[0]->data;
    if (!valid || (dtype != "u1" && dtype != "i1") || long_dims > 1 ||
        static_cast<std::size_t>(elements) != v.data.size()) {
      throw DataError(fmt::format(
          "{}: bins[{}] is a numpy array of dtype {} and shape ({}) with {} data bytes, "
          "expected uint8 of shape (L,) or (L, 1) holding the image's bytes",
          source, i, dtype, fmt::join(v.ints, ", "), v.data.size()));
    }
    return v.data;
  }
  if (v.kind != Kind::kBytes) {
    throw DataError(fmt::format("{}: bins[{}] is a {}, expected bytes or a uint8 numpy array",
                                source, i, serialization::kind_name(v)));
  }
  return v.text;
}

}  // namespace

PickledPack parse_pickle_pack(const std::vector<std::uint8_t>& bytes, const std::string& source) {
  PackVocabulary vocabulary;
  Unpickler unpickler(bytes.data(), bytes.size(), source, vocabulary);
  const PyValue* root = unpickler.run();
  if ((root->kind != Kind::kTuple && root->kind != Kind::kList) || root->items.size() != 2) {
    throw DataError(
        fmt::format("{}: the pickle holds a {} of {} items, expected a pair (bins, issame_list)",
                    source, serialization::kind_name(*root), root->items.size()));
  }
  const PyValue& bins = *root->items[0];
  if (bins.kind != Kind::kList && bins.kind != Kind::kTuple) {
    throw DataError(fmt::format("{}: bins is a {}, expected a list of images", source,
                                serialization::kind_name(bins)));
  }
  PickledPack pack;
  pack.issame = flags(unpickler, *root->items[1], source);
  if (pack.issame.empty()) {
    throw DataError(fmt::format("{}: issame_list is empty: a verification pack holds pairs",
                                source));
  }
  if (bins.items.size() != 2 * pack.issame.size()) {
    throw DataError(fmt::format("{}: {} images for {} issame flags, expected {} (two per pair)",
                                source, bins.items.size(), pack.issame.size(),
                                2 * pack.issame.size()));
  }
  // Each image's bytes are in the file at least once; more in total means objects referenced
  // many times (a memo bomb), which would be copied as many times.
  std::size_t total = 0;
  for (const auto* item : bins.items) {
    total += item->kind == Kind::kObject ? item->data.size() : item->text.size();
  }
  if (total > bytes.size()) {
    throw DataError(
        fmt::format("{}: the {} images hold {} bytes in all, more than the file's {}: "
                    "images are repeated by reference, which no pack does",
                    source, bins.items.size(), total, bytes.size()));
  }
  for (std::size_t i = 0; i < bins.items.size(); ++i) {
    const std::string& b = image_bytes(*bins.items[i], i, source);
    pack.images.emplace_back(b.begin(), b.end());
  }
  return pack;
}

}  // namespace facetrain::data
