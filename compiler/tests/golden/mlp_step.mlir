module @mlp_step attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @mesh = <["data"=1]>
  // params: x, w, labels
  // results: loss, w_new
  func.func public @main(%arg0: tensor<2x3xf32> {sdy.sharding = #sdy.sharding<@mesh, [{"data"}, {}]>}, %arg1: tensor<3x2xf32> {tf.aliasing_output = 1 : i32}, %arg2: tensor<2xi32>) -> (tensor<f32>, tensor<3x2xf32>) {
    %0 = "stablehlo.dot_general"(%arg0, %arg1) {dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>} : (tensor<2x3xf32>, tensor<3x2xf32>) -> tensor<2x2xf32>
    %1 = "stablehlo.tanh"(%0) : (tensor<2x2xf32>) -> tensor<2x2xf32>
    %2 = "stablehlo.constant"() {value = dense<0xFF800000> : tensor<f32>} : () -> tensor<f32>
    %3 = "stablehlo.reduce"(%1, %2) ({
    ^bb0(%4: tensor<f32>, %5: tensor<f32>):
      %6 = "stablehlo.maximum"(%4, %5) : (tensor<f32>, tensor<f32>) -> tensor<f32>
      "stablehlo.return"(%6) : (tensor<f32>) -> ()
    }) {dimensions = array<i64: 1>} : (tensor<2x2xf32>, tensor<f32>) -> tensor<2xf32>
    %7 = "stablehlo.reshape"(%3) : (tensor<2xf32>) -> tensor<2x1xf32>
    %8 = "stablehlo.abs"(%7) : (tensor<2x1xf32>) -> tensor<2x1xf32>
    %9 = "stablehlo.constant"() {value = dense<0x7F800000> : tensor<2x1xf32>} : () -> tensor<2x1xf32>
    %10 = "stablehlo.compare"(%8, %9) {comparison_direction = #stablehlo<comparison_direction LT>, compare_type = #stablehlo<comparison_type FLOAT>} : (tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xi1>
    %11 = "stablehlo.constant"() {value = dense<0.0e0> : tensor<2x1xf32>} : () -> tensor<2x1xf32>
    %12 = "stablehlo.select"(%10, %7, %11) : (tensor<2x1xi1>, tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xf32>
    %13 = "stablehlo.broadcast_in_dim"(%12) {broadcast_dimensions = array<i64: 0, 1>} : (tensor<2x1xf32>) -> tensor<2x2xf32>
    %14 = "stablehlo.subtract"(%1, %13) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %15 = "stablehlo.exponential"(%14) : (tensor<2x2xf32>) -> tensor<2x2xf32>
    %16 = "stablehlo.constant"() {value = dense<0.0e0> : tensor<f32>} : () -> tensor<f32>
    %17 = "stablehlo.reduce"(%15, %16) ({
    ^bb0(%18: tensor<f32>, %19: tensor<f32>):
      %20 = "stablehlo.add"(%18, %19) : (tensor<f32>, tensor<f32>) -> tensor<f32>
      "stablehlo.return"(%20) : (tensor<f32>) -> ()
    }) {dimensions = array<i64: 1>} : (tensor<2x2xf32>, tensor<f32>) -> tensor<2xf32>
    %21 = "stablehlo.reshape"(%17) : (tensor<2xf32>) -> tensor<2x1xf32>
    %22 = "stablehlo.log"(%21) : (tensor<2x1xf32>) -> tensor<2x1xf32>
    %23 = "stablehlo.add"(%22, %12) : (tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xf32>
    %24 = "stablehlo.broadcast_in_dim"(%23) {broadcast_dimensions = array<i64: 0, 1>} : (tensor<2x1xf32>) -> tensor<2x2xf32>
    %25 = "stablehlo.subtract"(%1, %24) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %26 = "stablehlo.iota"() {iota_dimension = 0 : i64} : () -> tensor<2x1xi32>
    %27 = "stablehlo.reshape"(%26) : (tensor<2x1xi32>) -> tensor<2x1x1xi32>
    %28 = "stablehlo.reshape"(%arg2) : (tensor<2xi32>) -> tensor<2x1x1xi32>
    %29 = "stablehlo.concatenate"(%27, %28) {dimension = 2 : i64} : (tensor<2x1x1xi32>, tensor<2x1x1xi32>) -> tensor<2x1x2xi32>
    %30 = "stablehlo.gather"(%25, %29) {dimension_numbers = #stablehlo.gather<collapsed_slice_dims = [0, 1], start_index_map = [0, 1], index_vector_dim = 2>, indices_are_sorted = false, slice_sizes = array<i64: 1, 1>} : (tensor<2x2xf32>, tensor<2x1x2xi32>) -> tensor<2x1xf32>
    %31 = "stablehlo.constant"() {value = dense<0.0e0> : tensor<f32>} : () -> tensor<f32>
    %32 = "stablehlo.reduce"(%30, %31) ({
    ^bb0(%33: tensor<f32>, %34: tensor<f32>):
      %35 = "stablehlo.add"(%33, %34) : (tensor<f32>, tensor<f32>) -> tensor<f32>
      "stablehlo.return"(%35) : (tensor<f32>) -> ()
    }) {dimensions = array<i64: 0, 1>} : (tensor<2x1xf32>, tensor<f32>) -> tensor<f32>
    %36 = "stablehlo.constant"() {value = dense<2.0e0> : tensor<f32>} : () -> tensor<f32>
    %37 = "stablehlo.divide"(%32, %36) : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %38 = "stablehlo.negate"(%37) : (tensor<f32>) -> tensor<f32>
    %39 = "stablehlo.constant"() {value = dense<1.0e0> : tensor<f32>} : () -> tensor<f32>
    %40 = "stablehlo.negate"(%39) : (tensor<f32>) -> tensor<f32>
    %41 = "stablehlo.divide"(%40, %36) : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %42 = "stablehlo.reshape"(%41) : (tensor<f32>) -> tensor<1x1xf32>
    %43 = "stablehlo.broadcast_in_dim"(%42) {broadcast_dimensions = array<i64: 0, 1>} : (tensor<1x1xf32>) -> tensor<2x1xf32>
    %44 = "stablehlo.constant"() {value = dense<0.0e0> : tensor<2x2xf32>} : () -> tensor<2x2xf32>
    %45 = "stablehlo.scatter"(%44, %29, %43) ({
    ^bb0(%46: tensor<f32>, %47: tensor<f32>):
      %48 = "stablehlo.add"(%46, %47) : (tensor<f32>, tensor<f32>) -> tensor<f32>
      "stablehlo.return"(%48) : (tensor<f32>) -> ()
    }) {indices_are_sorted = false, scatter_dimension_numbers = #stablehlo.scatter<inserted_window_dims = [0, 1], scatter_dims_to_operand_dims = [0, 1], index_vector_dim = 2>, unique_indices = false} : (tensor<2x2xf32>, tensor<2x1x2xi32>, tensor<2x1xf32>) -> tensor<2x2xf32>
    %49 = "stablehlo.negate"(%45) : (tensor<2x2xf32>) -> tensor<2x2xf32>
    %50 = "stablehlo.constant"() {value = dense<0.0e0> : tensor<f32>} : () -> tensor<f32>
    %51 = "stablehlo.reduce"(%49, %50) ({
    ^bb0(%52: tensor<f32>, %53: tensor<f32>):
      %54 = "stablehlo.add"(%52, %53) : (tensor<f32>, tensor<f32>) -> tensor<f32>
      "stablehlo.return"(%54) : (tensor<f32>) -> ()
    }) {dimensions = array<i64: 1>} : (tensor<2x2xf32>, tensor<f32>) -> tensor<2xf32>
    %55 = "stablehlo.reshape"(%51) : (tensor<2xf32>) -> tensor<2x1xf32>
    %56 = "stablehlo.divide"(%55, %21) : (tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xf32>
    %57 = "stablehlo.broadcast_in_dim"(%56) {broadcast_dimensions = array<i64: 0, 1>} : (tensor<2x1xf32>) -> tensor<2x2xf32>
    %58 = "stablehlo.multiply"(%57, %15) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %59 = "stablehlo.add"(%45, %58) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %60 = "stablehlo.multiply"(%1, %1) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %61 = "stablehlo.constant"() {value = dense<1.0e0> : tensor<2x2xf32>} : () -> tensor<2x2xf32>
    %62 = "stablehlo.subtract"(%61, %60) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %63 = "stablehlo.multiply"(%59, %62) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %64 = "stablehlo.dot_general"(%63, %arg0) {dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [0], rhs_contracting_dimensions = [0]>} : (tensor<2x2xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    %65 = "stablehlo.transpose"(%64) {permutation = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
    %66 = "stablehlo.constant"() {value = dense<1.0e-1> : tensor<3x2xf32>} : () -> tensor<3x2xf32>
    %67 = "stablehlo.multiply"(%65, %66) : (tensor<3x2xf32>, tensor<3x2xf32>) -> tensor<3x2xf32>
    %68 = "stablehlo.subtract"(%arg1, %67) : (tensor<3x2xf32>, tensor<3x2xf32>) -> tensor<3x2xf32>
    return %38, %68 : tensor<f32>, tensor<3x2xf32>
  }
}
