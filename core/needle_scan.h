#pragma once

// Where one of a few short substrings may start in a text, found 16 bytes at a time.
//
// The classifiers' prefilters run on every statement in transaction pooling and look for a handful
// of substrings that would send the text to the full lexer; byte by byte, with a check at every
// byte that starts one of them ('s', 't', 'a', ...), that scan was the biggest item in a forwarded
// query's cost. Here a needle is known by its first two bytes, both compared at once for a whole
// block: what is found is a candidate the caller checks in full (rare: a query seldom holds "se"
// or "pg" outside its first keyword). The needle count is a template parameter so that the
// compiler unrolls the compare over the needles.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace wirepool::core {

template <size_t N>
class NeedleScan {
 public:
  // Each entry: the first two bytes of a needle, or its only byte for a one-byte needle (which
  // matches whatever follows). ASCII letters are given in lower case and match either case; any
  // other byte matches itself only.
  constexpr explicit NeedleScan(const std::string_view (&starts)[N]) {
    for (size_t k = 0; k < N; ++k) {
      const std::string_view s = starts[k];
      const bool one_byte = s.size() == 1;
      pairs_[k].first_or.fill(Fold(s[0]));
      pairs_[k].first.fill(Byte(s[0]));
      // A one-byte needle's second byte: OR-ing 0xff makes any byte equal 0xff.
      pairs_[k].second_or.fill(one_byte ? 0xff : Fold(s[1]));
      pairs_[k].second.fill(one_byte ? 0xff : Byte(s[1]));
    }
  }

  // Whether Next stops where `needle` (lower case) starts: for a static_assert beside each list
  // of needles, so that a needle added to the list and not to the scan fails to compile.
  constexpr bool Finds(std::string_view needle) const {
    for (const Pair& pair : pairs_) {
      if ((Byte(needle[0]) | pair.first_or[0]) == pair.first[0] &&
          (needle.size() == 1 ? pair.second[0] == 0xff
                              : (Byte(needle[1]) | pair.second_or[0]) == pair.second[0])) {
        return true;
      }
    }
    return false;
  }

  // The first position at or after `from` where a needle may start; npos when there is none.
  // Every position where one does start is found.
  size_t Next(std::string_view text, size_t from) const {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
#if defined(__SSE2__)
    size_t i = from;
    for (; i + kBlock + 1 <= n; i += kBlock) {
      if (const uint32_t mask = BlockMask(p + i); mask != 0) {
        return i + static_cast<size_t>(__builtin_ctz(mask));
      }
    }
    if (i >= n) {
      return std::string_view::npos;
    }
    // The last bytes, padded with zeros: a zero second byte matches no two-byte needle, so the
    // last position finds only a one-byte needle, as it should.
    unsigned char tail[2 * kBlock] = {};
    std::memcpy(tail, p + i, n - i);
    const uint32_t mask = BlockMask(tail);
    return mask == 0 ? std::string_view::npos : i + static_cast<size_t>(__builtin_ctz(mask));
#else
    for (size_t i = from; i < n; ++i) {
      const unsigned char next = i + 1 < n ? p[i + 1] : 0;
      for (const Pair& pair : pairs_) {
        if ((p[i] | pair.first_or[0]) == pair.first[0] &&
            (next | pair.second_or[0]) == pair.second[0]) {
          return i;
        }
      }
    }
    return std::string_view::npos;
#endif
  }

 private:
  static constexpr size_t kBlock = 16;
  // Each byte repeated over a whole block, so a block compares with no broadcast. A byte of the
  // text matches when (byte | *_or) equals the needle's byte: *_or is 0x20 for a letter (which
  // folds the text's case), 0 for any other byte.
  using Lanes = std::array<unsigned char, kBlock>;
  struct Pair {
    alignas(16) Lanes first_or{};
    alignas(16) Lanes first{};
    alignas(16) Lanes second_or{};
    alignas(16) Lanes second{};
  };

  static constexpr unsigned char Byte(char c) { return static_cast<unsigned char>(c); }
  static constexpr unsigned char Fold(char c) { return c >= 'a' && c <= 'z' ? 0x20 : 0; }

#if defined(__SSE2__)
  // Bit i set: a needle may start at block[i]. block[0..16] must be readable (the 17th byte is
  // the last position's second byte).
  uint32_t BlockMask(const unsigned char* block) const {
    const __m128i cur = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block));
    const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 1));
    auto lanes = [](const Lanes& l) {
      return _mm_load_si128(reinterpret_cast<const __m128i*>(l.data()));
    };
    __m128i hits = _mm_setzero_si128();
    for (const Pair& pair : pairs_) {
      const __m128i first =
          _mm_cmpeq_epi8(_mm_or_si128(cur, lanes(pair.first_or)), lanes(pair.first));
      const __m128i second =
          _mm_cmpeq_epi8(_mm_or_si128(next, lanes(pair.second_or)), lanes(pair.second));
      hits = _mm_or_si128(hits, _mm_and_si128(first, second));
    }
    return static_cast<uint32_t>(_mm_movemask_epi8(hits));
  }
#endif

  std::array<Pair, N> pairs_{};
};

}  // namespace wirepool::core
