//! axle's own `#[repr(C)]` declarations of the PJRT C API (`xla/pjrt/c/pjrt_c_api.h`).
//!
//! Only what the runtime calls is declared, but the function table [`PJRT_Api`]
//! lists every entry in header order up to the last one used, so field offsets
//! match any plugin of API major version 0. Argument structs follow the header of
//! API 0.94 or later field for field; a plugin built against a newer header
//! accepts them because it only rejects structs *smaller* than its own. Every
//! struct carries the header's `*_STRUCT_SIZE` (offset of the last field plus
//! its size) in [`Args::STRUCT_SIZE`]; a unit test pins those numbers.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code
)]

use std::ffi::{c_char, c_int, c_void};
use std::mem::{offset_of, size_of};

/// Major version of the header these declarations follow.
pub const PJRT_API_MAJOR: i32 = 0;

/// An argument struct of the C API: it starts with `struct_size` and is valid
/// when zero-filled.
pub trait Args: Sized {
    /// `offsetof(last_field) + sizeof(last_field)`, the header's `*_STRUCT_SIZE`.
    const STRUCT_SIZE: usize;

    /// A zero-filled struct with `struct_size` set, ready to fill in.
    fn new() -> Self {
        // SAFETY: every declared struct consists of integers, bools, raw
        // pointers and `Option` of function pointers, all valid as zero bytes.
        let mut value: Self = unsafe { std::mem::zeroed() };
        // SAFETY: every `Args` type is `repr(C)` and starts with a `usize`.
        unsafe { *(&mut value as *mut Self as *mut usize) = Self::STRUCT_SIZE };
        value
    }
}

/// Size of the field a projection points at, usable in constants.
pub const fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Declares a `repr(C)` argument struct and its header size from its last field.
macro_rules! pjrt_struct {
    ($name:ident, last = $last:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[repr(C)]
        pub struct $name {
            $(pub $field: $ty,)*
        }
        impl Args for $name {
            const STRUCT_SIZE: usize =
                offset_of!($name, $last) + field_size(|s: &$name| &s.$last);
        }
    };
}

macro_rules! opaque {
    ($($name:ident),*) => {
        $(#[repr(C)] pub struct $name { _private: [u8; 0] })*
    };
}

opaque!(
    PJRT_Error,
    PJRT_Event,
    PJRT_Client,
    PJRT_Device,
    PJRT_Memory,
    PJRT_DeviceDescription,
    PJRT_Executable,
    PJRT_LoadedExecutable,
    PJRT_Buffer,
    PJRT_ExecuteContext,
    PJRT_Extension_Base,
    PJRT_TopologyDescription,
    PJRT_SerializedExecutable
);

/// `PJRT_Error_Code` (absl status codes).
pub type PJRT_Error_Code = c_int;
/// `PJRT_NamedValue_Type`.
pub type PJRT_NamedValue_Type = c_int;
pub const PJRT_NamedValue_kString: c_int = 0;
pub const PJRT_NamedValue_kInt64: c_int = 1;
pub const PJRT_NamedValue_kInt64List: c_int = 2;
pub const PJRT_NamedValue_kFloat: c_int = 3;
pub const PJRT_NamedValue_kBool: c_int = 4;

/// `PJRT_Buffer_Type`.
pub type PJRT_Buffer_Type = c_int;
pub const PJRT_Buffer_Type_PRED: c_int = 1;
pub const PJRT_Buffer_Type_S32: c_int = 4;
pub const PJRT_Buffer_Type_S64: c_int = 5;
pub const PJRT_Buffer_Type_U8: c_int = 6;
pub const PJRT_Buffer_Type_U32: c_int = 8;
pub const PJRT_Buffer_Type_F16: c_int = 10;
pub const PJRT_Buffer_Type_F32: c_int = 11;
pub const PJRT_Buffer_Type_F64: c_int = 12;
pub const PJRT_Buffer_Type_BF16: c_int = 13;

/// `PJRT_HostBufferSemantics`.
pub type PJRT_HostBufferSemantics = c_int;
pub const PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes: c_int = 1;

type ExtPtr = *mut PJRT_Extension_Base;

#[repr(C)]
pub struct PJRT_Api_Version {
    pub struct_size: usize,
    pub extension_start: ExtPtr,
    pub major_version: c_int,
    pub minor_version: c_int,
}

pjrt_struct!(PJRT_Error_Destroy_Args, last = error {
    struct_size: usize, extension_start: ExtPtr, error: *mut PJRT_Error,
});
pjrt_struct!(PJRT_Error_Message_Args, last = message_size {
    struct_size: usize, extension_start: ExtPtr, error: *const PJRT_Error,
    message: *const c_char, message_size: usize,
});
pjrt_struct!(PJRT_Error_GetCode_Args, last = code {
    struct_size: usize, extension_start: ExtPtr, error: *const PJRT_Error,
    code: PJRT_Error_Code,
});

/// The value union of `PJRT_NamedValue`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union PJRT_NamedValue_Value {
    pub string_value: *const c_char,
    pub int64_value: i64,
    pub int64_array_value: *const i64,
    pub float_value: f32,
    pub bool_value: bool,
}

pjrt_struct!(PJRT_NamedValue, last = value_size {
    struct_size: usize, extension_start: ExtPtr, name: *const c_char, name_size: usize,
    type_: PJRT_NamedValue_Type, value: PJRT_NamedValue_Value, value_size: usize,
});

pjrt_struct!(
    PJRT_Plugin_Initialize_Args,
    last = extension_start {
        struct_size: usize,
        extension_start: ExtPtr,
    }
);
pjrt_struct!(PJRT_Plugin_Attributes_Args, last = num_attributes {
    struct_size: usize, extension_start: ExtPtr, attributes: *const PJRT_NamedValue,
    num_attributes: usize,
});

pjrt_struct!(PJRT_Event_Destroy_Args, last = event {
    struct_size: usize, extension_start: ExtPtr, event: *mut PJRT_Event,
});
pjrt_struct!(PJRT_Event_Await_Args, last = event {
    struct_size: usize, extension_start: ExtPtr, event: *mut PJRT_Event,
});

pjrt_struct!(PJRT_Client_Create_Args, last = kv_try_get_user_arg {
    struct_size: usize, extension_start: ExtPtr, create_options: *const PJRT_NamedValue,
    num_options: usize, kv_get_callback: *mut c_void, kv_get_user_arg: *mut c_void,
    kv_put_callback: *mut c_void, kv_put_user_arg: *mut c_void, client: *mut PJRT_Client,
    kv_try_get_callback: *mut c_void, kv_try_get_user_arg: *mut c_void,
});
pjrt_struct!(PJRT_Client_Destroy_Args, last = client {
    struct_size: usize, extension_start: ExtPtr, client: *mut PJRT_Client,
});
pjrt_struct!(PJRT_Client_PlatformName_Args, last = platform_name_size {
    struct_size: usize, extension_start: ExtPtr, client: *mut PJRT_Client,
    platform_name: *const c_char, platform_name_size: usize,
});
pjrt_struct!(PJRT_Client_ProcessIndex_Args, last = process_index {
    struct_size: usize, extension_start: ExtPtr, client: *mut PJRT_Client, process_index: c_int,
});
pjrt_struct!(PJRT_Client_PlatformVersion_Args, last = platform_version_size {
    struct_size: usize, extension_start: ExtPtr, client: *mut PJRT_Client,
    platform_version: *const c_char, platform_version_size: usize,
});
pjrt_struct!(PJRT_Client_Devices_Args, last = num_devices {
    struct_size: usize, extension_start: ExtPtr, client: *mut PJRT_Client,
    devices: *const *mut PJRT_Device, num_devices: usize,
});
pjrt_struct!(PJRT_Client_AddressableDevices_Args, last = num_addressable_devices {
    struct_size: usize, extension_start: ExtPtr, client: *mut PJRT_Client,
    addressable_devices: *const *mut PJRT_Device, num_addressable_devices: usize,
});
pjrt_struct!(PJRT_Program, last = format_size {
    struct_size: usize, extension_start: ExtPtr, code: *mut c_char, code_size: usize,
    format: *const c_char, format_size: usize,
});
pjrt_struct!(PJRT_Client_Compile_Args, last = executable {
    struct_size: usize, extension_start: ExtPtr, client: *mut PJRT_Client,
    program: *const PJRT_Program, compile_options: *const c_char, compile_options_size: usize,
    executable: *mut PJRT_LoadedExecutable,
});
pjrt_struct!(PJRT_Client_BufferFromHostBuffer_Args, last = buffer {
    struct_size: usize, extension_start: ExtPtr, client: *mut PJRT_Client,
    data: *const c_void, type_: PJRT_Buffer_Type, dims: *const i64, num_dims: usize,
    byte_strides: *const i64, num_byte_strides: usize,
    host_buffer_semantics: PJRT_HostBufferSemantics, device: *mut PJRT_Device,
    memory: *mut PJRT_Memory, device_layout: *mut c_void,
    done_with_host_buffer: *mut PJRT_Event, buffer: *mut PJRT_Buffer,
});

pjrt_struct!(PJRT_DeviceDescription_Id_Args, last = id {
    struct_size: usize, extension_start: ExtPtr,
    device_description: *mut PJRT_DeviceDescription, id: c_int,
});
pjrt_struct!(PJRT_DeviceDescription_ProcessIndex_Args, last = process_index {
    struct_size: usize, extension_start: ExtPtr,
    device_description: *mut PJRT_DeviceDescription, process_index: c_int,
});
pjrt_struct!(PJRT_DeviceDescription_Kind_Args, last = device_kind_size {
    struct_size: usize, extension_start: ExtPtr,
    device_description: *mut PJRT_DeviceDescription, device_kind: *const c_char,
    device_kind_size: usize,
});
pjrt_struct!(PJRT_DeviceDescription_ToString_Args, last = to_string_size {
    struct_size: usize, extension_start: ExtPtr,
    device_description: *mut PJRT_DeviceDescription, to_string: *const c_char,
    to_string_size: usize,
});
pjrt_struct!(PJRT_DeviceDescription_Attributes_Args, last = attributes {
    struct_size: usize, extension_start: ExtPtr,
    device_description: *mut PJRT_DeviceDescription, num_attributes: usize,
    attributes: *const PJRT_NamedValue,
});
pjrt_struct!(PJRT_Device_MemoryStats_Args, last = peak_pool_bytes_is_set {
    struct_size: usize, extension_start: ExtPtr, device: *mut PJRT_Device,
    bytes_in_use: i64, peak_bytes_in_use: i64, peak_bytes_in_use_is_set: bool,
    num_allocs: i64, num_allocs_is_set: bool,
    largest_alloc_size: i64, largest_alloc_size_is_set: bool,
    bytes_limit: i64, bytes_limit_is_set: bool,
    bytes_reserved: i64, bytes_reserved_is_set: bool,
    peak_bytes_reserved: i64, peak_bytes_reserved_is_set: bool,
    bytes_reservable_limit: i64, bytes_reservable_limit_is_set: bool,
    largest_free_block_bytes: i64, largest_free_block_bytes_is_set: bool,
    pool_bytes: i64, pool_bytes_is_set: bool,
    peak_pool_bytes: i64, peak_pool_bytes_is_set: bool,
});
pjrt_struct!(PJRT_Device_GetDescription_Args, last = device_description {
    struct_size: usize, extension_start: ExtPtr, device: *mut PJRT_Device,
    device_description: *mut PJRT_DeviceDescription,
});

pjrt_struct!(PJRT_Executable_Destroy_Args, last = executable {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_Executable,
});
pjrt_struct!(PJRT_LoadedExecutable_Destroy_Args, last = executable {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_LoadedExecutable,
});
pjrt_struct!(PJRT_LoadedExecutable_GetExecutable_Args, last = executable {
    struct_size: usize, extension_start: ExtPtr,
    loaded_executable: *mut PJRT_LoadedExecutable, executable: *mut PJRT_Executable,
});
pjrt_struct!(PJRT_Executable_NumOutputs_Args, last = num_outputs {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_Executable,
    num_outputs: usize,
});
pjrt_struct!(PJRT_Executable_NumPartitions_Args, last = num_partitions {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_Executable,
    num_partitions: usize,
});
pjrt_struct!(PJRT_LoadedExecutable_AddressableDevices_Args, last = num_addressable_devices {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_LoadedExecutable,
    addressable_devices: *const *mut PJRT_Device, num_addressable_devices: usize,
});
pjrt_struct!(PJRT_Executable_OptimizedProgram_Args, last = program {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_Executable,
    program: *mut PJRT_Program,
});
pjrt_struct!(PJRT_ExecuteOptions, last = incarnation_ids {
    struct_size: usize, extension_start: ExtPtr, send_callbacks: *mut c_void,
    recv_callbacks: *mut c_void, num_send_ops: usize, num_recv_ops: usize, launch_id: c_int,
    non_donatable_input_indices: *const i64, num_non_donatable_input_indices: usize,
    context: *mut PJRT_ExecuteContext, call_location: *const c_char, num_tasks: usize,
    task_ids: *mut c_int, incarnation_ids: *mut i64,
});
pjrt_struct!(PJRT_LoadedExecutable_Execute_Args, last = execute_device {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_LoadedExecutable,
    options: *mut PJRT_ExecuteOptions, argument_lists: *const *const *mut PJRT_Buffer,
    num_devices: usize, num_args: usize, output_lists: *const *mut *mut PJRT_Buffer,
    device_complete_events: *mut *mut PJRT_Event, execute_device: *mut PJRT_Device,
});
pjrt_struct!(PJRT_Executable_GetCostAnalysis_Args, last = properties {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_Executable,
    num_properties: usize, properties: *const PJRT_NamedValue,
});
pjrt_struct!(PJRT_Executable_GetCompiledMemoryStats_Args, last = total_size_in_bytes {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_Executable,
    generated_code_size_in_bytes: i64, argument_size_in_bytes: i64,
    output_size_in_bytes: i64, alias_size_in_bytes: i64, temp_size_in_bytes: i64,
    host_generated_code_size_in_bytes: i64, host_argument_size_in_bytes: i64,
    host_output_size_in_bytes: i64, host_alias_size_in_bytes: i64,
    host_temp_size_in_bytes: i64, peak_memory_in_bytes: i64, total_size_in_bytes: i64,
});
pjrt_struct!(PJRT_Executable_OutputElementTypes_Args, last = num_output_types {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_Executable,
    output_types: *mut PJRT_Buffer_Type, num_output_types: usize,
});
pjrt_struct!(PJRT_Executable_OutputDimensions_Args, last = dim_sizes {
    struct_size: usize, extension_start: ExtPtr, executable: *mut PJRT_Executable,
    num_outputs: usize, dims: *const i64, dim_sizes: *const usize,
});

pjrt_struct!(PJRT_Executable_Serialize_Args, last = serialized_executable_deleter {
    struct_size: usize, extension_start: ExtPtr, executable: *const PJRT_Executable,
    serialized_bytes: *const c_char, serialized_bytes_size: usize,
    serialized_executable: *mut PJRT_SerializedExecutable,
    serialized_executable_deleter: Option<unsafe extern "C" fn(*mut PJRT_SerializedExecutable)>,
});
pjrt_struct!(PJRT_Executable_DeserializeAndLoad_Args, last = overridden_serialized_compile_options_size {
    struct_size: usize, extension_start: ExtPtr, client: *mut PJRT_Client,
    serialized_executable: *const c_char, serialized_executable_size: usize,
    loaded_executable: *mut PJRT_LoadedExecutable,
    overridden_serialized_compile_options: *const c_char,
    overridden_serialized_compile_options_size: usize,
});

pjrt_struct!(PJRT_TopologyDescription_Create_Args, last = topology {
    struct_size: usize, extension_start: ExtPtr, topology_name: *const c_char,
    topology_name_size: usize, create_options: *const PJRT_NamedValue, num_options: usize,
    topology: *mut PJRT_TopologyDescription,
});
pjrt_struct!(PJRT_TopologyDescription_Destroy_Args, last = topology {
    struct_size: usize, extension_start: ExtPtr, topology: *mut PJRT_TopologyDescription,
});
pjrt_struct!(PJRT_TopologyDescription_PlatformName_Args, last = platform_name_size {
    struct_size: usize, extension_start: ExtPtr, topology: *mut PJRT_TopologyDescription,
    platform_name: *const c_char, platform_name_size: usize,
});
pjrt_struct!(PJRT_TopologyDescription_PlatformVersion_Args, last = platform_version_size {
    struct_size: usize, extension_start: ExtPtr, topology: *mut PJRT_TopologyDescription,
    platform_version: *const c_char, platform_version_size: usize,
});
pjrt_struct!(PJRT_TopologyDescription_GetDeviceDescriptions_Args, last = num_descriptions {
    struct_size: usize, extension_start: ExtPtr, topology: *mut PJRT_TopologyDescription,
    descriptions: *const *mut PJRT_DeviceDescription, num_descriptions: usize,
});
pjrt_struct!(PJRT_TopologyDescription_Attributes_Args, last = num_attributes {
    struct_size: usize, extension_start: ExtPtr, topology: *mut PJRT_TopologyDescription,
    attributes: *const PJRT_NamedValue, num_attributes: usize,
});
pjrt_struct!(PJRT_Compile_Args, last = executable {
    struct_size: usize, extension_start: ExtPtr, topology: *const PJRT_TopologyDescription,
    program: *const PJRT_Program, compile_options: *const c_char, compile_options_size: usize,
    client: *mut PJRT_Client, executable: *mut PJRT_Executable,
});

pjrt_struct!(PJRT_Buffer_Destroy_Args, last = buffer {
    struct_size: usize, extension_start: ExtPtr, buffer: *mut PJRT_Buffer,
});
pjrt_struct!(PJRT_Buffer_ElementType_Args, last = type_ {
    struct_size: usize, extension_start: ExtPtr, buffer: *mut PJRT_Buffer,
    type_: PJRT_Buffer_Type,
});
pjrt_struct!(PJRT_Buffer_Dimensions_Args, last = num_dims {
    struct_size: usize, extension_start: ExtPtr, buffer: *mut PJRT_Buffer, dims: *const i64,
    num_dims: usize,
});
pjrt_struct!(PJRT_Buffer_ToHostBuffer_Args, last = event {
    struct_size: usize, extension_start: ExtPtr, src: *mut PJRT_Buffer,
    host_layout: *mut c_void, dst: *mut c_void, dst_size: usize, event: *mut PJRT_Event,
});
pjrt_struct!(PJRT_Buffer_Device_Args, last = device {
    struct_size: usize, extension_start: ExtPtr, buffer: *mut PJRT_Buffer,
    device: *mut PJRT_Device,
});
pjrt_struct!(PJRT_Buffer_ReadyEvent_Args, last = event {
    struct_size: usize, extension_start: ExtPtr, buffer: *mut PJRT_Buffer,
    event: *mut PJRT_Event,
});

/// A function-table entry taking `*mut A` and returning an error or null.
pub type Fun<A> = Option<unsafe extern "C" fn(*mut A) -> *mut PJRT_Error>;
/// An entry the runtime never calls; declared only to keep later offsets right.
pub type Unused = Option<unsafe extern "C" fn()>;

/// `PJRT_Api`: the plugin's function table, in header order up to
/// `PJRT_Executable_GetCompiledMemoryStats`, the last entry the runtime calls.
/// The topology and client-less compile entries (`PJRT_TopologyDescription_*`,
/// `PJRT_Compile`) are the ahead-of-time path of TPU and GPU plugins.
#[repr(C)]
pub struct PJRT_Api {
    pub struct_size: usize,
    pub extension_start: ExtPtr,
    pub pjrt_api_version: PJRT_Api_Version,

    pub PJRT_Error_Destroy: Option<unsafe extern "C" fn(*mut PJRT_Error_Destroy_Args)>,
    pub PJRT_Error_Message: Option<unsafe extern "C" fn(*mut PJRT_Error_Message_Args)>,
    pub PJRT_Error_GetCode: Fun<PJRT_Error_GetCode_Args>,

    pub PJRT_Plugin_Initialize: Fun<PJRT_Plugin_Initialize_Args>,
    pub PJRT_Plugin_Attributes: Fun<PJRT_Plugin_Attributes_Args>,

    pub PJRT_Event_Destroy: Fun<PJRT_Event_Destroy_Args>,
    pub PJRT_Event_IsReady: Unused,
    pub PJRT_Event_Error: Unused,
    pub PJRT_Event_Await: Fun<PJRT_Event_Await_Args>,
    pub PJRT_Event_OnReady: Unused,

    pub PJRT_Client_Create: Fun<PJRT_Client_Create_Args>,
    pub PJRT_Client_Destroy: Fun<PJRT_Client_Destroy_Args>,
    pub PJRT_Client_PlatformName: Fun<PJRT_Client_PlatformName_Args>,
    pub PJRT_Client_ProcessIndex: Fun<PJRT_Client_ProcessIndex_Args>,
    pub PJRT_Client_PlatformVersion: Fun<PJRT_Client_PlatformVersion_Args>,
    pub PJRT_Client_Devices: Fun<PJRT_Client_Devices_Args>,
    pub PJRT_Client_AddressableDevices: Fun<PJRT_Client_AddressableDevices_Args>,
    pub PJRT_Client_LookupDevice: Unused,
    pub PJRT_Client_LookupAddressableDevice: Unused,
    pub PJRT_Client_AddressableMemories: Unused,
    pub PJRT_Client_Compile: Fun<PJRT_Client_Compile_Args>,
    pub PJRT_Client_DefaultDeviceAssignment: Unused,
    pub PJRT_Client_BufferFromHostBuffer: Fun<PJRT_Client_BufferFromHostBuffer_Args>,

    pub PJRT_DeviceDescription_Id: Fun<PJRT_DeviceDescription_Id_Args>,
    pub PJRT_DeviceDescription_ProcessIndex: Fun<PJRT_DeviceDescription_ProcessIndex_Args>,
    pub PJRT_DeviceDescription_Attributes: Fun<PJRT_DeviceDescription_Attributes_Args>,
    pub PJRT_DeviceDescription_Kind: Fun<PJRT_DeviceDescription_Kind_Args>,
    pub PJRT_DeviceDescription_DebugString: Unused,
    pub PJRT_DeviceDescription_ToString: Fun<PJRT_DeviceDescription_ToString_Args>,

    pub PJRT_Device_GetDescription: Fun<PJRT_Device_GetDescription_Args>,
    pub PJRT_Device_IsAddressable: Unused,
    pub PJRT_Device_LocalHardwareId: Unused,
    pub PJRT_Device_AddressableMemories: Unused,
    pub PJRT_Device_DefaultMemory: Unused,
    pub PJRT_Device_MemoryStats: Fun<PJRT_Device_MemoryStats_Args>,

    pub PJRT_Memory_Id: Unused,
    pub PJRT_Memory_Kind: Unused,
    pub PJRT_Memory_DebugString: Unused,
    pub PJRT_Memory_ToString: Unused,
    pub PJRT_Memory_AddressableByDevices: Unused,

    pub PJRT_Executable_Destroy: Fun<PJRT_Executable_Destroy_Args>,
    pub PJRT_Executable_Name: Unused,
    pub PJRT_Executable_NumReplicas: Unused,
    pub PJRT_Executable_NumPartitions: Fun<PJRT_Executable_NumPartitions_Args>,
    pub PJRT_Executable_NumOutputs: Fun<PJRT_Executable_NumOutputs_Args>,
    pub PJRT_Executable_SizeOfGeneratedCodeInBytes: Unused,
    pub PJRT_Executable_GetCostAnalysis: Fun<PJRT_Executable_GetCostAnalysis_Args>,
    pub PJRT_Executable_OutputMemoryKinds: Unused,
    pub PJRT_Executable_OptimizedProgram: Fun<PJRT_Executable_OptimizedProgram_Args>,
    pub PJRT_Executable_Serialize: Fun<PJRT_Executable_Serialize_Args>,

    pub PJRT_LoadedExecutable_Destroy: Fun<PJRT_LoadedExecutable_Destroy_Args>,
    pub PJRT_LoadedExecutable_GetExecutable: Fun<PJRT_LoadedExecutable_GetExecutable_Args>,
    pub PJRT_LoadedExecutable_AddressableDevices:
        Fun<PJRT_LoadedExecutable_AddressableDevices_Args>,
    pub PJRT_LoadedExecutable_Delete: Unused,
    pub PJRT_LoadedExecutable_IsDeleted: Unused,
    pub PJRT_LoadedExecutable_Execute: Fun<PJRT_LoadedExecutable_Execute_Args>,
    pub PJRT_Executable_DeserializeAndLoad: Fun<PJRT_Executable_DeserializeAndLoad_Args>,
    pub PJRT_LoadedExecutable_Fingerprint: Unused,

    pub PJRT_Buffer_Destroy: Fun<PJRT_Buffer_Destroy_Args>,
    pub PJRT_Buffer_ElementType: Fun<PJRT_Buffer_ElementType_Args>,
    pub PJRT_Buffer_Dimensions: Fun<PJRT_Buffer_Dimensions_Args>,
    pub PJRT_Buffer_UnpaddedDimensions: Unused,
    pub PJRT_Buffer_DynamicDimensionIndices: Unused,
    pub PJRT_Buffer_GetMemoryLayout: Unused,
    pub PJRT_Buffer_OnDeviceSizeInBytes: Unused,
    pub PJRT_Buffer_Device: Fun<PJRT_Buffer_Device_Args>,
    pub PJRT_Buffer_Memory: Unused,
    pub PJRT_Buffer_Delete: Unused,
    pub PJRT_Buffer_IsDeleted: Unused,
    pub PJRT_Buffer_CopyToDevice: Unused,
    pub PJRT_Buffer_ToHostBuffer: Fun<PJRT_Buffer_ToHostBuffer_Args>,
    pub PJRT_Buffer_IsOnCpu: Unused,
    pub PJRT_Buffer_ReadyEvent: Fun<PJRT_Buffer_ReadyEvent_Args>,
    pub PJRT_Buffer_UnsafePointer: Unused,
    pub PJRT_Buffer_IncreaseExternalReferenceCount: Unused,
    pub PJRT_Buffer_DecreaseExternalReferenceCount: Unused,
    pub PJRT_Buffer_OpaqueDeviceMemoryDataPointer: Unused,

    pub PJRT_CopyToDeviceStream_Destroy: Unused,
    pub PJRT_CopyToDeviceStream_AddChunk: Unused,
    pub PJRT_CopyToDeviceStream_TotalBytes: Unused,
    pub PJRT_CopyToDeviceStream_GranuleSize: Unused,
    pub PJRT_CopyToDeviceStream_CurrentBytes: Unused,

    pub PJRT_TopologyDescription_Create: Fun<PJRT_TopologyDescription_Create_Args>,
    pub PJRT_TopologyDescription_Destroy: Fun<PJRT_TopologyDescription_Destroy_Args>,
    pub PJRT_TopologyDescription_PlatformName: Fun<PJRT_TopologyDescription_PlatformName_Args>,
    pub PJRT_TopologyDescription_PlatformVersion:
        Fun<PJRT_TopologyDescription_PlatformVersion_Args>,
    pub PJRT_TopologyDescription_GetDeviceDescriptions:
        Fun<PJRT_TopologyDescription_GetDeviceDescriptions_Args>,
    pub PJRT_TopologyDescription_Serialize: Unused,
    pub PJRT_TopologyDescription_Attributes: Fun<PJRT_TopologyDescription_Attributes_Args>,

    pub PJRT_Compile: Fun<PJRT_Compile_Args>,

    pub PJRT_Executable_OutputElementTypes: Fun<PJRT_Executable_OutputElementTypes_Args>,
    pub PJRT_Executable_OutputDimensions: Fun<PJRT_Executable_OutputDimensions_Args>,
    pub PJRT_Buffer_CopyToMemory: Unused,
    pub PJRT_Client_CreateViewOfDeviceBuffer: Unused,
    pub PJRT_Executable_Fingerprint: Unused,
    pub PJRT_Client_TopologyDescription: Unused,
    pub PJRT_Executable_GetCompiledMemoryStats: Fun<PJRT_Executable_GetCompiledMemoryStats_Args>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's `*_STRUCT_SIZE` values on a 64-bit target, computed by hand
    /// from `pjrt_c_api.h` (API 0.94): `offsetof(last field) + sizeof(last field)`.
    /// A mismatch means a field is missing, extra or of the wrong type.
    #[test]
    fn struct_sizes_match_the_header() {
        let expected: &[(&str, usize, usize)] = &[
            (
                "PJRT_Error_Destroy_Args",
                PJRT_Error_Destroy_Args::STRUCT_SIZE,
                24,
            ),
            (
                "PJRT_Error_Message_Args",
                PJRT_Error_Message_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Error_GetCode_Args",
                PJRT_Error_GetCode_Args::STRUCT_SIZE,
                28,
            ),
            ("PJRT_NamedValue", PJRT_NamedValue::STRUCT_SIZE, 56),
            (
                "PJRT_Plugin_Initialize_Args",
                PJRT_Plugin_Initialize_Args::STRUCT_SIZE,
                16,
            ),
            (
                "PJRT_Plugin_Attributes_Args",
                PJRT_Plugin_Attributes_Args::STRUCT_SIZE,
                32,
            ),
            (
                "PJRT_Event_Destroy_Args",
                PJRT_Event_Destroy_Args::STRUCT_SIZE,
                24,
            ),
            (
                "PJRT_Event_Await_Args",
                PJRT_Event_Await_Args::STRUCT_SIZE,
                24,
            ),
            (
                "PJRT_Client_Create_Args",
                PJRT_Client_Create_Args::STRUCT_SIZE,
                88,
            ),
            (
                "PJRT_Client_Destroy_Args",
                PJRT_Client_Destroy_Args::STRUCT_SIZE,
                24,
            ),
            (
                "PJRT_Client_PlatformName_Args",
                PJRT_Client_PlatformName_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Client_ProcessIndex_Args",
                PJRT_Client_ProcessIndex_Args::STRUCT_SIZE,
                28,
            ),
            (
                "PJRT_Client_PlatformVersion_Args",
                PJRT_Client_PlatformVersion_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Client_Devices_Args",
                PJRT_Client_Devices_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Client_AddressableDevices_Args",
                PJRT_Client_AddressableDevices_Args::STRUCT_SIZE,
                40,
            ),
            ("PJRT_Program", PJRT_Program::STRUCT_SIZE, 48),
            (
                "PJRT_Client_Compile_Args",
                PJRT_Client_Compile_Args::STRUCT_SIZE,
                56,
            ),
            (
                "PJRT_Client_BufferFromHostBuffer_Args",
                PJRT_Client_BufferFromHostBuffer_Args::STRUCT_SIZE,
                120,
            ),
            (
                "PJRT_DeviceDescription_Id_Args",
                PJRT_DeviceDescription_Id_Args::STRUCT_SIZE,
                28,
            ),
            (
                "PJRT_DeviceDescription_ProcessIndex_Args",
                PJRT_DeviceDescription_ProcessIndex_Args::STRUCT_SIZE,
                28,
            ),
            (
                "PJRT_DeviceDescription_Kind_Args",
                PJRT_DeviceDescription_Kind_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_DeviceDescription_ToString_Args",
                PJRT_DeviceDescription_ToString_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Device_MemoryStats_Args",
                PJRT_Device_MemoryStats_Args::STRUCT_SIZE,
                185,
            ),
            (
                "PJRT_Device_GetDescription_Args",
                PJRT_Device_GetDescription_Args::STRUCT_SIZE,
                32,
            ),
            (
                "PJRT_Executable_Destroy_Args",
                PJRT_Executable_Destroy_Args::STRUCT_SIZE,
                24,
            ),
            (
                "PJRT_LoadedExecutable_Destroy_Args",
                PJRT_LoadedExecutable_Destroy_Args::STRUCT_SIZE,
                24,
            ),
            (
                "PJRT_LoadedExecutable_GetExecutable_Args",
                PJRT_LoadedExecutable_GetExecutable_Args::STRUCT_SIZE,
                32,
            ),
            (
                "PJRT_Executable_NumOutputs_Args",
                PJRT_Executable_NumOutputs_Args::STRUCT_SIZE,
                32,
            ),
            (
                "PJRT_Executable_NumPartitions_Args",
                PJRT_Executable_NumPartitions_Args::STRUCT_SIZE,
                32,
            ),
            (
                "PJRT_LoadedExecutable_AddressableDevices_Args",
                PJRT_LoadedExecutable_AddressableDevices_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Executable_OptimizedProgram_Args",
                PJRT_Executable_OptimizedProgram_Args::STRUCT_SIZE,
                32,
            ),
            ("PJRT_ExecuteOptions", PJRT_ExecuteOptions::STRUCT_SIZE, 112),
            (
                "PJRT_LoadedExecutable_Execute_Args",
                PJRT_LoadedExecutable_Execute_Args::STRUCT_SIZE,
                80,
            ),
            (
                "PJRT_Executable_GetCostAnalysis_Args",
                PJRT_Executable_GetCostAnalysis_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Executable_GetCompiledMemoryStats_Args",
                PJRT_Executable_GetCompiledMemoryStats_Args::STRUCT_SIZE,
                120,
            ),
            (
                "PJRT_Executable_OutputElementTypes_Args",
                PJRT_Executable_OutputElementTypes_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Executable_OutputDimensions_Args",
                PJRT_Executable_OutputDimensions_Args::STRUCT_SIZE,
                48,
            ),
            (
                "PJRT_Buffer_Destroy_Args",
                PJRT_Buffer_Destroy_Args::STRUCT_SIZE,
                24,
            ),
            (
                "PJRT_Buffer_ElementType_Args",
                PJRT_Buffer_ElementType_Args::STRUCT_SIZE,
                28,
            ),
            (
                "PJRT_Buffer_Dimensions_Args",
                PJRT_Buffer_Dimensions_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Buffer_ToHostBuffer_Args",
                PJRT_Buffer_ToHostBuffer_Args::STRUCT_SIZE,
                56,
            ),
            (
                "PJRT_Buffer_Device_Args",
                PJRT_Buffer_Device_Args::STRUCT_SIZE,
                32,
            ),
            (
                "PJRT_Buffer_ReadyEvent_Args",
                PJRT_Buffer_ReadyEvent_Args::STRUCT_SIZE,
                32,
            ),
            (
                "PJRT_DeviceDescription_Attributes_Args",
                PJRT_DeviceDescription_Attributes_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_Executable_Serialize_Args",
                PJRT_Executable_Serialize_Args::STRUCT_SIZE,
                56,
            ),
            (
                "PJRT_Executable_DeserializeAndLoad_Args",
                PJRT_Executable_DeserializeAndLoad_Args::STRUCT_SIZE,
                64,
            ),
            (
                "PJRT_TopologyDescription_Create_Args",
                PJRT_TopologyDescription_Create_Args::STRUCT_SIZE,
                56,
            ),
            (
                "PJRT_TopologyDescription_GetDeviceDescriptions_Args",
                PJRT_TopologyDescription_GetDeviceDescriptions_Args::STRUCT_SIZE,
                40,
            ),
            (
                "PJRT_TopologyDescription_Attributes_Args",
                PJRT_TopologyDescription_Attributes_Args::STRUCT_SIZE,
                40,
            ),
            ("PJRT_Compile_Args", PJRT_Compile_Args::STRUCT_SIZE, 64),
        ];
        for (name, ours, header) in expected {
            assert_eq!(ours, header, "{name}: ours {ours}, header {header}");
        }
    }

    /// Offsets of table entries checked against the header's order: entry k
    /// (0-based, after struct_size, extension_start and the 24-byte version
    /// struct) sits at 40 + 8k.
    #[test]
    fn api_table_offsets_follow_header_order() {
        assert_eq!(size_of::<PJRT_Api_Version>(), 24);
        assert_eq!(offset_of!(PJRT_Api, PJRT_Error_Destroy), 40);
        assert_eq!(offset_of!(PJRT_Api, PJRT_Client_Create), 40 + 8 * 10);
        assert_eq!(
            offset_of!(PJRT_Api, PJRT_Client_BufferFromHostBuffer),
            40 + 8 * 22
        );
        assert_eq!(offset_of!(PJRT_Api, PJRT_Executable_Destroy), 40 + 8 * 40);
        assert_eq!(
            offset_of!(PJRT_Api, PJRT_LoadedExecutable_Destroy),
            40 + 8 * 50
        );
        assert_eq!(offset_of!(PJRT_Api, PJRT_Buffer_Destroy), 40 + 8 * 58);
        assert_eq!(offset_of!(PJRT_Api, PJRT_Compile), 40 + 8 * 89);
        assert_eq!(
            offset_of!(PJRT_Api, PJRT_Executable_GetCompiledMemoryStats),
            40 + 8 * 96
        );
    }
}
