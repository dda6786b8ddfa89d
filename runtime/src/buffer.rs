//! Device buffers: host data in, host data out.

use ndarray::{ArrayD, IxDyn};

use crate::client::Client;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::ffi::{self, Args};
use crate::plugin::pjrt_call;

/// An array in the memory of one device. Freed on drop.
pub struct Buffer {
    pub(crate) client: Client,
    pub(crate) raw: *mut ffi::PJRT_Buffer,
    pub(crate) device: *mut ffi::PJRT_Device,
    dtype: DType,
    dims: Vec<usize>,
}

// SAFETY: PJRT buffers are thread-safe by the C API's contract (reads, copies
// and destruction may come from any thread); `Buffer` gives no interior access
// to device memory.
unsafe impl Send for Buffer {}
// SAFETY: as above; every `&self` method only issues thread-safe PJRT calls.
unsafe impl Sync for Buffer {}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({}{:?})", self.dtype, self.dims)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut args = ffi::PJRT_Buffer_Destroy_Args::new();
        args.buffer = self.raw;
        // Destroying cannot meaningfully fail; there is nobody to tell.
        let _ = pjrt_call!(&self.client.inner.plugin, PJRT_Buffer_Destroy, &mut args);
    }
}

fn element_count(dims: &[usize]) -> usize {
    dims.iter().product()
}

impl Client {
    /// Copies `data` (row-major, `dims` shape) to addressable device `device`.
    /// The length is checked against the shape before the plugin sees it.
    pub fn buffer_from_slice<T: Element>(
        &self,
        data: &[T],
        dims: &[usize],
        device: usize,
    ) -> Result<Buffer> {
        self.buffer_from_bytes(T::DTYPE, T::as_bytes(data), dims, device)
    }

    /// Copies an ndarray (any memory order) to addressable device `device`.
    pub fn buffer_from_array<T: Element>(
        &self,
        array: &ArrayD<T>,
        device: usize,
    ) -> Result<Buffer> {
        match array.as_slice() {
            Some(data) => self.buffer_from_slice(data, array.shape(), device),
            None => {
                let data: Vec<T> = array.iter().copied().collect();
                self.buffer_from_slice(&data, array.shape(), device)
            }
        }
    }

    /// Copies raw row-major bytes of `dtype` elements to device `device`.
    pub fn buffer_from_bytes(
        &self,
        dtype: DType,
        bytes: &[u8],
        dims: &[usize],
        device: usize,
    ) -> Result<Buffer> {
        let expected = element_count(dims) * dtype.size();
        if bytes.len() != expected {
            return Err(Error::ByteLength {
                shape: dims.to_vec(),
                dtype,
                expected,
                got: bytes.len(),
            });
        }
        let device_ptr = self.device_ptr(device)?;
        let dims_i64: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let plugin = &self.inner.plugin;
        let mut args = ffi::PJRT_Client_BufferFromHostBuffer_Args::new();
        args.client = self.inner.raw;
        args.data = bytes.as_ptr().cast();
        args.type_ = dtype.to_pjrt();
        args.dims = dims_i64.as_ptr();
        args.num_dims = dims_i64.len();
        args.host_buffer_semantics = ffi::PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes;
        args.device = device_ptr;
        pjrt_call!(plugin, PJRT_Client_BufferFromHostBuffer, &mut args)?;
        let buffer = Buffer {
            client: self.clone(),
            raw: args.buffer,
            device: device_ptr,
            dtype,
            dims: dims.to_vec(),
        };
        // `bytes` is borrowed only until the transfer completes: wait for it.
        plugin.await_event(
            args.done_with_host_buffer,
            "PJRT_Client_BufferFromHostBuffer",
        )?;
        Ok(buffer)
    }
}

impl Buffer {
    /// Wraps a buffer the plugin returned, reading its type and shape.
    pub(crate) fn from_raw(
        client: &Client,
        raw: *mut ffi::PJRT_Buffer,
        device: *mut ffi::PJRT_Device,
    ) -> Result<Buffer> {
        let plugin = &client.inner.plugin;
        let mut ty = ffi::PJRT_Buffer_ElementType_Args::new();
        ty.buffer = raw;
        let mut dims = ffi::PJRT_Buffer_Dimensions_Args::new();
        dims.buffer = raw;
        // Wrap first so the handle is freed whatever happens next.
        let mut buffer = Buffer {
            client: client.clone(),
            raw,
            device,
            dtype: DType::F32,
            dims: Vec::new(),
        };
        pjrt_call!(plugin, PJRT_Buffer_ElementType, &mut ty)?;
        pjrt_call!(plugin, PJRT_Buffer_Dimensions, &mut dims)?;
        buffer.dtype = DType::from_pjrt(ty.type_).ok_or(Error::UnsupportedType(ty.type_))?;
        if !dims.dims.is_null() {
            // SAFETY: the plugin returns `num_dims` dims owned by the buffer.
            let d = unsafe { std::slice::from_raw_parts(dims.dims, dims.num_dims) };
            buffer.dims = d.iter().map(|&x| x as usize).collect();
        }
        Ok(buffer)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Size of the host copy in bytes.
    pub fn byte_len(&self) -> usize {
        element_count(&self.dims) * self.dtype.size()
    }

    /// The client the buffer belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Waits until the buffer's contents are computed, returning any error
    /// the computation that produces it reported.
    pub fn ready(&self) -> Result<()> {
        let plugin = &self.client.inner.plugin;
        let mut args = ffi::PJRT_Buffer_ReadyEvent_Args::new();
        args.buffer = self.raw;
        pjrt_call!(plugin, PJRT_Buffer_ReadyEvent, &mut args)?;
        plugin.await_event(args.event, "PJRT_Buffer_ReadyEvent")
    }

    /// Copies the buffer into `dst` (exactly [`Buffer::byte_len`] bytes).
    pub fn copy_to_bytes(&self, dst: &mut [u8]) -> Result<()> {
        if dst.len() != self.byte_len() {
            return Err(Error::ByteLength {
                shape: self.dims.clone(),
                dtype: self.dtype,
                expected: self.byte_len(),
                got: dst.len(),
            });
        }
        if dst.is_empty() {
            return Ok(());
        }
        let plugin = &self.client.inner.plugin;
        let mut args = ffi::PJRT_Buffer_ToHostBuffer_Args::new();
        args.src = self.raw;
        args.dst = dst.as_mut_ptr().cast();
        args.dst_size = dst.len();
        pjrt_call!(plugin, PJRT_Buffer_ToHostBuffer, &mut args)?;
        plugin.await_event(args.event, "PJRT_Buffer_ToHostBuffer")
    }

    /// The contents as a flat row-major vector. `T` must match the dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype {
            return Err(Error::DTypeMismatch {
                expected: T::DTYPE,
                got: self.dtype,
            });
        }
        T::read_with(element_count(&self.dims), |bytes| self.copy_to_bytes(bytes))
    }

    /// The contents as an ndarray of the buffer's shape.
    pub fn to_array<T: Element>(&self) -> Result<ArrayD<T>> {
        let data = self.to_vec::<T>()?;
        ArrayD::from_shape_vec(IxDyn(&self.dims), data).map_err(|e| Error::Array {
            shape: self.dims.clone(),
            reason: e.to_string(),
        })
    }
}
