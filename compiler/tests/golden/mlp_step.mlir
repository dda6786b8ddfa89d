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
    %22 = "stablehlo.compare"(%21, %11) {comparison_direction = #stablehlo<comparison_direction NE>, compare_type = #stablehlo<comparison_type FLOAT>} : (tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xi1>
    %23 = "stablehlo.constant"() {value = dense<1.0e0> : tensor<f32>} : () -> tensor<f32>
    %24 = "stablehlo.constant"() {value = dense<1.0e0> : tensor<2x1xf32>} : () -> tensor<2x1xf32>
    %25 = "stablehlo.select"(%22, %21, %24) : (tensor<2x1xi1>, tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xf32>
    %26 = "stablehlo.log"(%25) : (tensor<2x1xf32>) -> tensor<2x1xf32>
    %27 = "stablehlo.select"(%22, %26, %11) : (tensor<2x1xi1>, tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xf32>
    %28 = "stablehlo.broadcast_in_dim"(%27) {broadcast_dimensions = array<i64: 0, 1>} : (tensor<2x1xf32>) -> tensor<2x2xf32>
    %29 = "stablehlo.subtract"(%14, %28) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %30 = "stablehlo.iota"() {iota_dimension = 0 : i64} : () -> tensor<2x1xi32>
    %31 = "stablehlo.reshape"(%30) : (tensor<2x1xi32>) -> tensor<2x1x1xi32>
    %32 = "stablehlo.reshape"(%arg2) : (tensor<2xi32>) -> tensor<2x1x1xi32>
    %33 = "stablehlo.concatenate"(%31, %32) {dimension = 2 : i64} : (tensor<2x1x1xi32>, tensor<2x1x1xi32>) -> tensor<2x1x2xi32>
    %34 = "stablehlo.gather"(%29, %33) {dimension_numbers = #stablehlo.gather<collapsed_slice_dims = [0, 1], start_index_map = [0, 1], index_vector_dim = 2>, indices_are_sorted = false, slice_sizes = array<i64: 1, 1>} : (tensor<2x2xf32>, tensor<2x1x2xi32>) -> tensor<2x1xf32>
    %35 = "stablehlo.constant"() {value = dense<0.0e0> : tensor<f32>} : () -> tensor<f32>
    %36 = "stablehlo.reduce"(%34, %35) ({
    ^bb0(%37: tensor<f32>, %38: tensor<f32>):
      %39 = "stablehlo.add"(%37, %38) : (tensor<f32>, tensor<f32>) -> tensor<f32>
      "stablehlo.return"(%39) : (tensor<f32>) -> ()
    }) {dimensions = array<i64: 0, 1>} : (tensor<2x1xf32>, tensor<f32>) -> tensor<f32>
    %40 = "stablehlo.constant"() {value = dense<2.0e0> : tensor<f32>} : () -> tensor<f32>
    %41 = "stablehlo.divide"(%36, %40) : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %42 = "stablehlo.negate"(%41) : (tensor<f32>) -> tensor<f32>
    %43 = "stablehlo.negate"(%23) : (tensor<f32>) -> tensor<f32>
    %44 = "stablehlo.divide"(%43, %40) : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %45 = "stablehlo.reshape"(%44) : (tensor<f32>) -> tensor<1x1xf32>
    %46 = "stablehlo.broadcast_in_dim"(%45) {broadcast_dimensions = array<i64: 0, 1>} : (tensor<1x1xf32>) -> tensor<2x1xf32>
    %47 = "stablehlo.constant"() {value = dense<0.0e0> : tensor<2x2xf32>} : () -> tensor<2x2xf32>
    %48 = "stablehlo.constant"() {value = dense<1> : tensor<1xi32>} : () -> tensor<1xi32>
    %49 = "stablehlo.concatenate"(%48, %48) {dimension = 0 : i64} : (tensor<1xi32>, tensor<1xi32>) -> tensor<2xi32>
    %50 = "stablehlo.broadcast_in_dim"(%49) {broadcast_dimensions = array<i64: 2>} : (tensor<2xi32>) -> tensor<2x1x2xi32>
    %51 = "stablehlo.constant"() {value = dense<0> : tensor<2x1x2xi32>} : () -> tensor<2x1x2xi32>
    %52 = "stablehlo.clamp"(%51, %33, %50) : (tensor<2x1x2xi32>, tensor<2x1x2xi32>, tensor<2x1x2xi32>) -> tensor<2x1x2xi32>
    %53 = "stablehlo.scatter"(%47, %52, %46) ({
    ^bb0(%54: tensor<f32>, %55: tensor<f32>):
      %56 = "stablehlo.add"(%54, %55) : (tensor<f32>, tensor<f32>) -> tensor<f32>
      "stablehlo.return"(%56) : (tensor<f32>) -> ()
    }) {indices_are_sorted = false, scatter_dimension_numbers = #stablehlo.scatter<inserted_window_dims = [0, 1], scatter_dims_to_operand_dims = [0, 1], index_vector_dim = 2>, unique_indices = false} : (tensor<2x2xf32>, tensor<2x1x2xi32>, tensor<2x1xf32>) -> tensor<2x2xf32>
    %57 = "stablehlo.negate"(%53) : (tensor<2x2xf32>) -> tensor<2x2xf32>
    %58 = "stablehlo.constant"() {value = dense<0.0e0> : tensor<f32>} : () -> tensor<f32>
    %59 = "stablehlo.reduce"(%57, %58) ({
    ^bb0(%60: tensor<f32>, %61: tensor<f32>):
      %62 = "stablehlo.add"(%60, %61) : (tensor<f32>, tensor<f32>) -> tensor<f32>
      "stablehlo.return"(%62) : (tensor<f32>) -> ()
    }) {dimensions = array<i64: 1>} : (tensor<2x2xf32>, tensor<f32>) -> tensor<2xf32>
    %63 = "stablehlo.reshape"(%59) : (tensor<2xf32>) -> tensor<2x1xf32>
    %64 = "stablehlo.select"(%22, %63, %11) : (tensor<2x1xi1>, tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xf32>
    %65 = "stablehlo.divide"(%64, %25) : (tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xf32>
    %66 = "stablehlo.select"(%22, %65, %11) : (tensor<2x1xi1>, tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x1xf32>
    %67 = "stablehlo.broadcast_in_dim"(%66) {broadcast_dimensions = array<i64: 0, 1>} : (tensor<2x1xf32>) -> tensor<2x2xf32>
    %68 = "stablehlo.multiply"(%67, %15) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %69 = "stablehlo.add"(%53, %68) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %70 = "stablehlo.multiply"(%1, %1) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %71 = "stablehlo.constant"() {value = dense<1.0e0> : tensor<2x2xf32>} : () -> tensor<2x2xf32>
    %72 = "stablehlo.subtract"(%71, %70) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %73 = "stablehlo.multiply"(%69, %72) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %74 = "stablehlo.dot_general"(%73, %arg0) {dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [0], rhs_contracting_dimensions = [0]>} : (tensor<2x2xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    %75 = "stablehlo.transpose"(%74) {permutation = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
    %76 = "stablehlo.constant"() {value = dense<1.0e-1> : tensor<3x2xf32>} : () -> tensor<3x2xf32>
    %77 = "stablehlo.multiply"(%75, %76) : (tensor<3x2xf32>, tensor<3x2xf32>) -> tensor<3x2xf32>
    %78 = "stablehlo.subtract"(%arg1, %77) : (tensor<3x2xf32>, tensor<3x2xf32>) -> tensor<3x2xf32>
    return %42, %78 : tensor<f32>, tensor<3x2xf32>
  }
}
