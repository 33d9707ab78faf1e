#pragma once

// A Python pickle interpreter that runs no Python code: it builds plain values (None, bools,
// ints, floats, bytes, str, lists, tuples, dicts) itself and leaves everything else — which
// globals may appear, what calling one makes, what a persistent id stands for — to a
// PickleVocabulary of the file format being read (numpy arrays in a verification pack, tensors in
// a torch.save archive). Parsers assume an attacker: every length is checked against the bytes
// left, memo indices must have been stored, values live in an arena without owning each other,
// so cycles and deep nesting neither leak nor recurse, and what the values take in memory is
// bounded by the pickle's size (kMemoryPerByte, beyond kMemoryAllowance): a pickle of a million
// one-byte "new list" opcodes cannot take gigabytes.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace facetrain::serialization {

// A value a pickle built. Owned by its Unpickler.
struct PyValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kBytes,
    kStr,
    kList,
    kTuple,
    kDict,
    kGlobal,
    kObject,
    kMark
  };
  Kind kind = Kind::kNone;
  std::int64_t integer = 0;  // kBool, kInt
  double real = 0;           // kFloat
  // kBytes, kStr (UTF-8), kGlobal ("module name"), kObject: its type as the vocabulary names it.
  std::string text;
  // kList, kTuple; kDict: keys and values alternating, in the order set (a key set twice is
  // there twice; dict_get takes the later, as Python would); kObject: its parts.
  std::vector<PyValue*> items;
  std::vector<std::int64_t> ints;  // kObject: its numbers (a shape, strides, …)
  std::string data;                // kObject: its raw bytes
};

// "None", "int", "dict", …; for a kObject its type.
std::string kind_name(const PyValue& value);
// The value under str key `key` of dict `dict`, or nullptr.
const PyValue* dict_get(const PyValue& dict, const std::string& key);
// Whether `value` is an object of the vocabulary's type `type`.
inline bool is_object(const PyValue& value, const std::string& type) {
  return value.kind == PyValue::Kind::kObject && value.text == type;
}

class Unpickler;

// What a file format admits beyond plain data. Each hook fails through Unpickler::fail for
// anything it does not accept.
class PickleVocabulary {
 public:
  virtual ~PickleVocabulary() = default;
  // What the file should be, for messages: "a verification pack".
  virtual std::string format() const = 0;
  // Whether GLOBAL "module name" may appear at all.
  virtual bool allows(const std::string& global) const = 0;
  // REDUCE (and NEWOBJ): what calling `callable` (an allowed global) with the tuple `args` makes.
  virtual PyValue* reduce(Unpickler& u, const PyValue& callable, const PyValue& args) = 0;
  // BUILD: applies `state` to `object`. By default a dict accepts an attribute dict (the state
  // an OrderedDict carries), which is ignored; anything else fails.
  virtual void build(Unpickler& u, PyValue& object, const PyValue& state);
  // BINPERSID / PERSID: what the external reference `id` stands for. By default, a failure.
  virtual PyValue* persistent(Unpickler& u, const PyValue& id);
};

class Unpickler {
 public:
  // `bytes` must outlive the Unpickler; `source` names the file in messages.
  Unpickler(const std::uint8_t* bytes, std::size_t size, std::string source,
            PickleVocabulary& vocabulary);
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  // Interprets the pickle up to STOP; returns the one value left on the stack.
  const PyValue* run();
  // A new value in the arena.
  PyValue* make(PyValue::Kind kind);
  // DataError "SOURCE: byte N: WHAT", N the offset of the opcode being interpreted.
  [[noreturn]] void fail(const std::string& what) const;
  const std::string& source() const { return source_; }

  static constexpr std::size_t kMemoryAllowance = std::size_t{64} << 20;
  static constexpr std::size_t kMemoryPerByte = 8;

 private:
  const std::uint8_t* take(std::size_t n);
  std::uint64_t le(std::size_t n);
  std::string read_line();
  std::uint64_t parse_index(const std::string& text);
  void push(PyValue* v) { stack_.push_back(v); }
  void push_int(std::int64_t i);
  void push_text(PyValue::Kind kind, std::uint64_t n);
  void push_global(const std::string& module, const std::string& name);
  PyValue* pop();
  PyValue* top(const char* op);
  PyValue* memo_get(std::uint64_t index);
  void memo_put(std::uint64_t index, const char* op);
  std::vector<PyValue*> pop_mark();
  PyValue* container_on_top(const char* op, PyValue::Kind kind);
  void set_items(PyValue& dict, const std::vector<PyValue*>& pairs);
  void reduce();
  void interpret(std::uint8_t op);
  // Each interprets the opcodes of its kind; false for another kind's.
  bool stack_opcode(std::uint8_t op);
  bool container_opcode(std::uint8_t op);
  bool scalar_opcode(std::uint8_t op);
  bool text_opcode(std::uint8_t op);
  bool memo_opcode(std::uint8_t op);
  bool call_opcode(std::uint8_t op);
  // Counts `bytes` more of memory held for the values; fails past the pickle's budget.
  void spend(std::size_t bytes);

  const std::uint8_t* bytes_;
  std::size_t size_;
  std::string source_;
  PickleVocabulary& vocabulary_;
  std::size_t pos_ = 0;
  std::size_t op_pos_ = 0;
  bool stopped_ = false;
  std::size_t budget_ = 0, spent_ = 0;
  PyValue* mark_ = nullptr;
  std::vector<PyValue*> stack_;
  std::map<std::uint64_t, PyValue*> memo_;
  std::vector<std::unique_ptr<PyValue>> arena_;  // every value made, freed with the unpickler
};

}  // namespace facetrain::serialization
