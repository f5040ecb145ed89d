// The dtype and tensor-role tables (model/dtype.h RAZOR_DTYPES, model/adapter.h RAZOR_ROLES): every row answers
// its name, its other column and the lookup by name; what no row has gets the documented fallback.
#include <gtest/gtest.h>

#include "model/adapter.h"
#include "model/dtype.h"

using namespace razor;

TEST(ModelTables, EveryDtypeRow) {
#define X(id, name, size)                             \
  EXPECT_EQ(dtype_name(dtype::id), name);             \
  EXPECT_EQ(dtype_size(dtype::id), size_t(size));     \
  EXPECT_EQ(dtype_from_name(name), dtype::id);
  RAZOR_DTYPES(X)
#undef X
  EXPECT_EQ(dtype_name(dtype::unknown), "unknown");
  EXPECT_EQ(dtype_size(dtype::unknown), 0u);
  EXPECT_EQ(dtype_from_name("F12"), dtype::unknown);
  EXPECT_EQ(dtype_from_name("bf16"), dtype::unknown);  // safetensors spells it BF16
}

TEST(ModelTables, EveryRoleRow) {
#define X(id, name, q)                                   \
  {                                                      \
    tensor_role r = tensor_role::other;                  \
    EXPECT_TRUE(role_from_name(name, &r)) << name;       \
    EXPECT_EQ(r, tensor_role::id);                       \
    EXPECT_EQ(role_name(tensor_role::id), name);         \
    EXPECT_EQ(role_is_quantizable(tensor_role::id), q);  \
  }
  RAZOR_ROLES(X)
#undef X
  tensor_role r = tensor_role::norm;
  EXPECT_FALSE(role_from_name("experts", &r));
  EXPECT_EQ(r, tensor_role::norm);  // left alone when the name is unknown
}
