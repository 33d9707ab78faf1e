// fmt's compiled part, once for the whole program. facetrain uses the fmt that LibTorch ships
// (its headers shadow any other on the include path of code that uses torch), and that copy
// comes as headers only: included in header-only mode, every file that formats a value would
// compile fmt's formatting engine again (~7 s each). Here it is compiled once, as fmt's own
// library build does: the non-template functions from format-inl.h and the explicit
// instantiations that format.h declares extern.
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {

template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;

template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<wchar_t>;
template FMT_API auto decimal_point_impl(locale_ref) -> wchar_t;

}  // namespace detail
FMT_END_NAMESPACE
