#pragma once

#include <gtest/gtest.h>

#include <string>

namespace facetrain::test {

// The message of the E that `f` throws; a test failure (and "") when it throws nothing.
// Exceptions of other types propagate, failing the test with their own message.
template <typename E, typename F>
std::string thrown_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception, none was thrown";
  return {};
}

}  // namespace facetrain::test
