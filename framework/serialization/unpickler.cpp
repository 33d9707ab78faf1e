#include "framework/serialization/unpickler.h"

#include <fmt/format.h>

#include <cstring>

#include "framework/core/error.h"

namespace facetrain::serialization {

std::string kind_name(const PyValue& value) {
  switch (value.kind) {
    case PyValue::Kind::kNone:
      return "None";
    case PyValue::Kind::kBool:
      return "bool";
    case PyValue::Kind::kInt:
      return "int";
    case PyValue::Kind::kFloat:
      return "float";
    case PyValue::Kind::kBytes:
      return "bytes";
    case PyValue::Kind::kStr:
      return "str";
    case PyValue::Kind::kList:
      return "list";
    case PyValue::Kind::kTuple:
      return "tuple";
    case PyValue::Kind::kDict:
      return "dict";
    case PyValue::Kind::kGlobal:
      return "global " + value.text;
    case PyValue::Kind::kObject:
      return value.text;
    case PyValue::Kind::kMark:
      return "mark";
  }
  return "?";
}

const PyValue* dict_get(const PyValue& dict, const std::string& key) {
  if (dict.kind != PyValue::Kind::kDict) return nullptr;
  // From the end: a key set twice has its later value, as in Python.
  for (std::size_t i = dict.items.size() / 2; i > 0; --i) {
    const PyValue& k = *dict.items[2 * i - 2];
    if (k.kind == PyValue::Kind::kStr && k.text == key) return dict.items[2 * i - 1];
  }
  return nullptr;
}

void PickleVocabulary::build(Unpickler& u, PyValue& object, const PyValue& state) {
  if (object.kind == PyValue::Kind::kDict && state.kind == PyValue::Kind::kDict) return;
  u.fail(fmt::format("BUILD of a {} with a {} is not part of {}", kind_name(object),
                     kind_name(state), format()));
}

PyValue* PickleVocabulary::persistent(Unpickler& u, const PyValue& id) {
  u.fail(fmt::format("a persistent reference ({}) is not part of {}", kind_name(id), format()));
}

Unpickler::Unpickler(const std::uint8_t* bytes, std::size_t size, std::string source,
                     PickleVocabulary& vocabulary)
    : bytes_(bytes),
      size_(size),
      source_(std::move(source)),
      vocabulary_(vocabulary),
      budget_(kMemoryAllowance + kMemoryPerByte * size) {}

void Unpickler::spend(std::size_t bytes) {
  spent_ += bytes;
  if (spent_ > budget_) {
    fail(fmt::format("the pickle's values take more than {} MiB for its {} bytes: a pickle bomb",
                     budget_ >> 20, size_));
  }
}

const PyValue* Unpickler::run() {
  while (!stopped_) {
    if (pos_ >= size_) {
      op_pos_ = pos_;
      fail("the file ends before the pickle's STOP opcode (truncated)");
    }
    op_pos_ = pos_;
    interpret(bytes_[pos_++]);
  }
  if (stack_.size() != 1) fail(fmt::format("STOP with {} values on the stack", stack_.size()));
  return stack_.back();
}

PyValue* Unpickler::make(PyValue::Kind kind) {
  spend(sizeof(PyValue) + sizeof(std::unique_ptr<PyValue>));
  arena_.push_back(std::make_unique<PyValue>());
  arena_.back()->kind = kind;
  return arena_.back().get();
}

void Unpickler::fail(const std::string& what) const {
  throw DataError(fmt::format("{}: byte {}: {}", source_, op_pos_, what));
}

// One opcode (protocols 0 to 5, less the ones no data file needs: sets, frozensets, extension
// registry codes, out-of-band buffers).
void Unpickler::interpret(std::uint8_t op) {
  if (stack_opcode(op) || container_opcode(op) || scalar_opcode(op) || text_opcode(op) ||
      memo_opcode(op) || call_opcode(op)) {
    return;
  }
  fail(fmt::format("opcode 0x{:02x}{} is not one {} uses", op,
                   op >= 0x20 && op < 0x7f ? fmt::format(" ('{}')", static_cast<char>(op)) : "",
                   vocabulary_.format()));
}

// The machine itself: protocol, frames, STOP, marks, POP, DUP.
bool Unpickler::stack_opcode(std::uint8_t op) {
  using K = PyValue::Kind;
  switch (op) {
    case 0x80:  // PROTO
      take(1);
      break;
    case 0x95:  // FRAME: a length hint, the opcodes follow inline
      take(8);
      break;
    case '.':  // STOP
      stopped_ = true;
      break;
    case '(':  // MARK: one shared value, never stored anywhere
      if (mark_ == nullptr) mark_ = make(K::kMark);
      spend(sizeof(PyValue*));
      push(mark_);
      break;
    case '0':  // POP
      pop();
      break;
    case '1':  // POP_MARK
      pop_mark();
      break;
    case '2':  // DUP
      spend(sizeof(PyValue*));
      push(top("DUP"));
      break;
    default:
      return false;
  }
  return true;
}

// Lists, tuples and dicts: made empty or from the stack, and filled.
bool Unpickler::container_opcode(std::uint8_t op) {
  using K = PyValue::Kind;
  switch (op) {
    case ']':  // EMPTY_LIST
      push(make(K::kList));
      break;
    case ')':  // EMPTY_TUPLE
      push(make(K::kTuple));
      break;
    case '}':  // EMPTY_DICT
      push(make(K::kDict));
      break;
    case 'l':    // LIST
    case 't': {  // TUPLE
      PyValue* v = make(op == 'l' ? K::kList : K::kTuple);
      v->items = pop_mark();
      push(v);
      break;
    }
    case 'd': {  // DICT
      PyValue* v = make(K::kDict);
      set_items(*v, pop_mark());
      push(v);
      break;
    }
    case 0x85:
    case 0x86:
    case 0x87: {  // TUPLE1..3
      const std::size_t n = op - 0x84u;
      std::vector<PyValue*> items(n);
      for (std::size_t i = n; i > 0; --i) items[i - 1] = pop();
      PyValue* v = make(K::kTuple);
      v->items = std::move(items);
      push(v);
      break;
    }
    case 'a': {  // APPEND
      spend(sizeof(PyValue*));
      PyValue* item = pop();
      container_on_top("APPEND", K::kList)->items.push_back(item);
      break;
    }
    case 'e': {  // APPENDS
      const auto items = pop_mark();
      auto& list = container_on_top("APPENDS", K::kList)->items;
      list.insert(list.end(), items.begin(), items.end());
      break;
    }
    case 's': {  // SETITEM
      spend(2 * sizeof(PyValue*));
      PyValue* value = pop();
      PyValue* key = pop();
      set_items(*container_on_top("SETITEM", K::kDict), {key, value});
      break;
    }
    case 'u': {  // SETITEMS
      const auto pairs = pop_mark();
      set_items(*container_on_top("SETITEMS", K::kDict), pairs);
      break;
    }
    default:
      return false;
  }
  return true;
}

// None, bools, ints and floats.
bool Unpickler::scalar_opcode(std::uint8_t op) {
  using K = PyValue::Kind;
  switch (op) {
    case 'N':
      push(make(K::kNone));
      break;
    case 0x88:
    case 0x89: {  // NEWTRUE, NEWFALSE
      PyValue* v = make(K::kBool);
      v->integer = op == 0x88;
      push(v);
      break;
    }
    case 'J':  // BININT
      push_int(static_cast<std::int32_t>(le(4)));
      break;
    case 'K':  // BININT1
      push_int(static_cast<std::int64_t>(le(1)));
      break;
    case 'M':  // BININT2
      push_int(static_cast<std::int64_t>(le(2)));
      break;
    case 0x8a: {  // LONG1
      const auto n = static_cast<std::size_t>(le(1));
      if (n > 8) fail(fmt::format("LONG1 of {} bytes (at most 8 supported)", n));
      std::uint64_t u = n > 0 ? le(n) : 0;
      if (n > 0 && n < 8 && ((u >> (8 * n - 1)) & 1)) u |= ~std::uint64_t{0} << (8 * n);
      push_int(static_cast<std::int64_t>(u));
      break;
    }
    case 'I':    // INT (protocol 0; "01"/"00" are True/False)
    case 'L': {  // LONG (protocol 0, with a trailing L)
      std::string line = read_line();
      if (op == 'I' && (line == "01" || line == "00")) {
        PyValue* v = make(K::kBool);
        v->integer = line == "01";
        push(v);
        break;
      }
      if (op == 'L' && !line.empty() && line.back() == 'L') line.pop_back();
      try {
        std::size_t used = 0;
        const long long value = std::stoll(line, &used);
        if (used != line.size()) throw std::invalid_argument(line);
        push_int(value);
      } catch (const std::exception&) {
        fail(fmt::format("'{}' is not a 64-bit integer", line));
      }
      break;
    }
    case 'G': {  // BINFLOAT: big-endian IEEE double
      const std::uint8_t* p = take(8);
      std::uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
      PyValue* v = make(K::kFloat);
      std::memcpy(&v->real, &bits, sizeof(bits));
      push(v);
      break;
    }
    case 'F': {  // FLOAT (protocol 0)
      const std::string line = read_line();
      PyValue* v = make(K::kFloat);
      try {
        v->real = std::stod(line);
      } catch (const std::exception&) {
        fail(fmt::format("'{}' is not a float", line));
      }
      push(v);
      break;
    }
    default:
      return false;
  }
  return true;
}

// bytes and str.
bool Unpickler::text_opcode(std::uint8_t op) {
  using K = PyValue::Kind;
  switch (op) {
    case 'B':  // BINBYTES
    case 'T':  // BINSTRING (Python 2 str)
      push_text(K::kBytes, le(4));
      break;
    case 'C':  // SHORT_BINBYTES
    case 'U':  // SHORT_BINSTRING
      push_text(K::kBytes, le(1));
      break;
    case 0x8e:  // BINBYTES8
    case 0x96:  // BYTEARRAY8
      push_text(K::kBytes, le(8));
      break;
    case 'X':  // BINUNICODE
      push_text(K::kStr, le(4));
      break;
    case 0x8c:  // SHORT_BINUNICODE
      push_text(K::kStr, le(1));
      break;
    case 0x8d:  // BINUNICODE8
      push_text(K::kStr, le(8));
      break;
    default:
      return false;
  }
  return true;
}

// The memo: PUT and GET in their forms.
bool Unpickler::memo_opcode(std::uint8_t op) {
  switch (op) {
    case 'q':  // BINPUT
      memo_put(le(1), "BINPUT");
      break;
    case 'r':  // LONG_BINPUT
      memo_put(le(4), "LONG_BINPUT");
      break;
    case 'p':  // PUT
      memo_put(parse_index(read_line()), "PUT");
      break;
    case 0x94:  // MEMOIZE
      memo_put(memo_.size(), "MEMOIZE");
      break;
    case 'h':  // BINGET
      spend(sizeof(PyValue*));
      push(memo_get(le(1)));
      break;
    case 'j':  // LONG_BINGET
      spend(sizeof(PyValue*));
      push(memo_get(le(4)));
      break;
    case 'g':  // GET
      spend(sizeof(PyValue*));
      push(memo_get(parse_index(read_line())));
      break;
    default:
      return false;
  }
  return true;
}

// What the vocabulary decides: globals, calls, BUILD, persistent references.
bool Unpickler::call_opcode(std::uint8_t op) {
  using K = PyValue::Kind;
  switch (op) {
    case 'c': {  // GLOBAL
      const std::string module = read_line();
      const std::string name = read_line();
      push_global(module, name);
      break;
    }
    case 0x93: {  // STACK_GLOBAL
      PyValue* name = pop();
      PyValue* module = pop();
      if (module->kind != K::kStr || name->kind != K::kStr) fail("STACK_GLOBAL needs two strings");
      push_global(module->text, name->text);
      break;
    }
    case 'R':   // REDUCE
    case 0x81:  // NEWOBJ: cls(*args), which the vocabulary rebuilds like a call
      reduce();
      break;
    case 'b': {  // BUILD
      PyValue* state = pop();
      vocabulary_.build(*this, *top("BUILD"), *state);
      break;
    }
    case 'Q': {  // BINPERSID
      PyValue* id = pop();
      push(vocabulary_.persistent(*this, *id));
      break;
    }
    case 'P': {  // PERSID
      PyValue* id = make(K::kStr);
      id->text = read_line();
      push(vocabulary_.persistent(*this, *id));
      break;
    }
    default:
      return false;
  }
  return true;
}

const std::uint8_t* Unpickler::take(std::size_t n) {
  if (n > size_ - pos_) {
    fail(
        fmt::format("needs {} more bytes but the file ends after {} (truncated)", n, size_ - pos_));
  }
  const std::uint8_t* p = bytes_ + pos_;
  pos_ += n;
  return p;
}

std::uint64_t Unpickler::le(std::size_t n) {
  const std::uint8_t* p = take(n);
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

std::string Unpickler::read_line() {
  const auto* start = bytes_ + pos_;
  const auto* end = static_cast<const std::uint8_t*>(std::memchr(start, '\n', size_ - pos_));
  if (end == nullptr) fail("the file ends inside a text argument (truncated)");
  pos_ += static_cast<std::size_t>(end - start) + 1;
  return {reinterpret_cast<const char*>(start), static_cast<std::size_t>(end - start)};
}

std::uint64_t Unpickler::parse_index(const std::string& text) {
  try {
    std::size_t used = 0;
    const unsigned long long v = std::stoull(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  fail(fmt::format("memo index '{}' is not a number", text));
}

void Unpickler::push_int(std::int64_t i) {
  PyValue* v = make(PyValue::Kind::kInt);
  v->integer = i;
  push(v);
}

void Unpickler::push_text(PyValue::Kind kind, std::uint64_t n) {
  PyValue* v = make(kind);
  const std::uint8_t* p = take(static_cast<std::size_t>(n));
  spend(static_cast<std::size_t>(n));
  v->text.assign(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  push(v);
}

void Unpickler::push_global(const std::string& module, const std::string& name) {
  const std::string global = module + " " + name;
  if (!vocabulary_.allows(global)) {
    fail(fmt::format("global '{}' is not allowed in {} (nothing is executed)", global,
                     vocabulary_.format()));
  }
  PyValue* v = make(PyValue::Kind::kGlobal);
  v->text = global;
  push(v);
}

PyValue* Unpickler::pop() {
  if (stack_.empty() || stack_.back()->kind == PyValue::Kind::kMark) {
    fail("pops from an empty stack");
  }
  PyValue* v = stack_.back();
  stack_.pop_back();
  return v;
}

PyValue* Unpickler::top(const char* op) {
  if (stack_.empty() || stack_.back()->kind == PyValue::Kind::kMark) {
    fail(fmt::format("{} on an empty stack", op));
  }
  return stack_.back();
}

PyValue* Unpickler::memo_get(std::uint64_t index) {
  const auto it = memo_.find(index);
  if (it == memo_.end()) fail(fmt::format("memo entry {} was never stored", index));
  return it->second;
}

void Unpickler::memo_put(std::uint64_t index, const char* op) {
  PyValue* value = top(op);
  const auto [it, added] = memo_.emplace(index, value);
  if (added) {
    spend(64);  // a map node
  } else {
    it->second = value;
  }
}

std::vector<PyValue*> Unpickler::pop_mark() {
  std::size_t k = stack_.size();
  while (k > 0 && stack_[k - 1]->kind != PyValue::Kind::kMark) --k;
  if (k == 0) fail("no MARK on the stack");
  // The items move into a container: a pointer each.
  spend(sizeof(PyValue*) * (stack_.size() - k));
  std::vector<PyValue*> items(stack_.begin() + static_cast<std::ptrdiff_t>(k), stack_.end());
  stack_.resize(k - 1);
  return items;
}

PyValue* Unpickler::container_on_top(const char* op, PyValue::Kind kind) {
  PyValue* c = top(op);
  if (c->kind != kind) {
    fail(fmt::format("{} onto a {}, expected a {}", op, kind_name(*c),
                     kind == PyValue::Kind::kList ? "list" : "dict"));
  }
  return c;
}

void Unpickler::set_items(PyValue& dict, const std::vector<PyValue*>& pairs) {
  if (pairs.size() % 2 != 0) fail("an odd number of values for a dict's keys and values");
  dict.items.insert(dict.items.end(), pairs.begin(), pairs.end());
}

void Unpickler::reduce() {
  PyValue* args = pop();
  PyValue* callable = pop();
  if (callable->kind != PyValue::Kind::kGlobal || args->kind != PyValue::Kind::kTuple) {
    fail(fmt::format("REDUCE of a {} with a {}", kind_name(*callable), kind_name(*args)));
  }
  push(vocabulary_.reduce(*this, *callable, *args));
}

}  // namespace facetrain::serialization
