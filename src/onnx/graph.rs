//! A graph under construction: named values, nodes of the standard ONNX domain (opset 17) and
//! initializers taken from the model's own tensors. The modules emit their graph through it
//! next to their `forward` (each `*_onnx`/`onnx` method mirrors that file's forward pass).
use std::collections::HashMap;

use tch::nn;
use tch::{Kind, Tensor};

use super::proto::{AttributeProto, AttributeType, DataType, NodeProto, TensorProto};
use crate::activation::Activation;
use crate::error::{Error, Result};

/// A value of the graph (a node's output, an input or an initializer), by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V(pub(crate) String);

impl V {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// A LayerNorm and its epsilon (tch keeps the epsilon private).
#[derive(Debug, Clone, Copy)]
pub struct Norm<'a> {
    pub ln: &'a nn::LayerNorm,
    pub eps: f64,
}

/// A tensor's storage address, sizes, strides, and whether it is stored transposed.
type WeightKey = (usize, Vec<i64>, Vec<i64>, bool);

#[derive(Default)]
pub struct Graph {
    pub(crate) nodes: Vec<NodeProto>,
    pub(crate) initializers: Vec<TensorProto>,
    next: usize,
    /// Constants by their bytes: one initializer however often they are used.
    constants: HashMap<(Vec<i64>, i32, Vec<u8>), V>,
    /// Weights by storage address: a tensor used twice (ALBERT's shared layers) is stored once.
    /// The tensor is kept so that its address is not reused by another (a merged weight).
    weights: HashMap<WeightKey, (V, Tensor)>,
}

pub fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: Some(i),
        r#type: AttributeType::Int as i32,
        ..Default::default()
    }
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: AttributeType::Ints as i32,
        ..Default::default()
    }
}

pub fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: Some(f),
        r#type: AttributeType::Float as i32,
        ..Default::default()
    }
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    /// A node of `op` with one output.
    pub fn op(&mut self, op: &str, inputs: &[&V], attrs: Vec<AttributeProto>) -> V {
        let out = V(self.fresh(op));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|v| v.0.clone()).collect(),
            output: vec![out.0.clone()],
            name: out.0.clone(),
            op_type: op.into(),
            attribute: attrs,
        });
        out
    }

    /// A node whose output gets the given name (a graph output).
    pub fn rename(&mut self, v: &V, name: &str) -> V {
        let out = V(name.to_string());
        self.nodes.push(NodeProto {
            input: vec![v.0.clone()],
            output: vec![out.0.clone()],
            name: format!("{name}_identity"),
            op_type: "Identity".into(),
            attribute: Vec::new(),
        });
        out
    }

    fn constant(&mut self, dims: Vec<i64>, data_type: DataType, raw: Vec<u8>) -> V {
        let key = (dims, data_type as i32, raw);
        if let Some(v) = self.constants.get(&key) {
            return v.clone();
        }
        let v = V(self.fresh("const"));
        self.initializers.push(TensorProto {
            dims: key.0.clone(),
            data_type: key.1,
            name: v.0.clone(),
            raw_data: key.2.clone(),
            ..Default::default()
        });
        self.constants.insert(key, v.clone());
        v
    }

    /// A 1-D int64 constant (shapes, axes).
    pub fn ints(&mut self, values: &[i64]) -> V {
        let raw = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.constant(vec![values.len() as i64], DataType::Int64, raw)
    }

    /// An int64 constant holding `t` (index tables).
    pub fn int_tensor(&mut self, t: &Tensor) -> Result<V> {
        let t = t
            .to_kind(Kind::Int64)
            .to_device(tch::Device::Cpu)
            .contiguous();
        let values = Vec::<i64>::try_from(t.view(-1))
            .map_err(|e| Error::Invalid(format!("an index table could not be read: {e}")))?;
        let raw = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        Ok(self.constant(t.size(), DataType::Int64, raw))
    }

    /// A 0-D int64 constant (an index that removes its axis).
    pub fn index(&mut self, i: i64) -> V {
        self.constant(Vec::new(), DataType::Int64, i.to_le_bytes().to_vec())
    }

    /// A 0-D float constant.
    pub fn scalar(&mut self, x: f64) -> V {
        self.constant(
            Vec::new(),
            DataType::Float,
            (x as f32).to_le_bytes().to_vec(),
        )
    }

    /// A float initializer holding `t` (transposed when `transpose`: MatMul wants [in, out]).
    pub fn weight(&mut self, t: &Tensor, transpose: bool) -> Result<V> {
        // A view is the same tensor only with the same sizes and strides.
        let key = (t.data_ptr() as usize, t.size(), t.stride(), transpose);
        if let Some((v, _)) = self.weights.get(&key) {
            return Ok(v.clone());
        }
        let kept = t.shallow_clone();
        let t = if transpose { t.tr() } else { t.shallow_clone() };
        let t = t
            .to_kind(Kind::Float)
            .to_device(tch::Device::Cpu)
            .contiguous();
        let values = Vec::<f32>::try_from(t.view(-1))
            .map_err(|e| Error::Invalid(format!("a weight could not be read: {e}")))?;
        let v = V(self.fresh("w"));
        self.initializers.push(TensorProto {
            dims: t.size(),
            data_type: DataType::Float as i32,
            name: v.0.clone(),
            raw_data: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        });
        self.weights.insert(key, (v.clone(), kept));
        Ok(v)
    }

    pub fn add(&mut self, a: &V, b: &V) -> V {
        self.op("Add", &[a, b], Vec::new())
    }

    pub fn sub(&mut self, a: &V, b: &V) -> V {
        self.op("Sub", &[a, b], Vec::new())
    }

    pub fn mul(&mut self, a: &V, b: &V) -> V {
        self.op("Mul", &[a, b], Vec::new())
    }

    pub fn div(&mut self, a: &V, b: &V) -> V {
        self.op("Div", &[a, b], Vec::new())
    }

    pub fn scale(&mut self, a: &V, s: f64) -> V {
        let s = self.scalar(s);
        self.mul(a, &s)
    }

    pub fn matmul(&mut self, a: &V, b: &V) -> V {
        self.op("MatMul", &[a, b], Vec::new())
    }

    /// `x W^T + b` with the given weight [out, in] and bias.
    pub fn linear_of(&mut self, x: &V, ws: &Tensor, bs: Option<&Tensor>) -> Result<V> {
        let w = self.weight(ws, true)?;
        let y = self.matmul(x, &w);
        Ok(match bs {
            Some(b) => {
                let b = self.weight(b, false)?;
                self.add(&y, &b)
            }
            None => y,
        })
    }

    pub fn linear(&mut self, x: &V, l: &nn::Linear) -> Result<V> {
        self.linear_of(x, &l.ws, l.bs.as_ref())
    }

    /// LayerNormalization over the last axis (opset 17).
    pub fn layer_norm(&mut self, x: &V, n: Norm) -> Result<V> {
        let (Some(w), Some(b)) = (&n.ln.ws, &n.ln.bs) else {
            return Err(Error::Invalid(
                "a LayerNorm without weight and bias cannot be exported".into(),
            ));
        };
        let (w, b) = (self.weight(w, false)?, self.weight(b, false)?);
        Ok(self.op(
            "LayerNormalization",
            &[x, &w, &b],
            vec![int("axis", -1), float("epsilon", n.eps as f32)],
        ))
    }

    /// `x` through the LayerNorm when there is one (post-LN sub-layers).
    pub fn sublayer_norm(&mut self, ln: Option<Norm>, x: &V) -> Result<V> {
        match ln {
            Some(n) => self.layer_norm(x, n),
            None => Ok(x.clone()),
        }
    }

    pub fn activation(&mut self, x: &V, a: Activation) -> V {
        match a {
            Activation::Relu => self.op("Relu", &[x], Vec::new()),
            Activation::Tanh => self.op("Tanh", &[x], Vec::new()),
            Activation::Sigmoid => self.op("Sigmoid", &[x], Vec::new()),
            Activation::LeakyRelu => self.op("LeakyRelu", &[x], vec![float("alpha", 0.01)]),
            Activation::Identity => x.clone(),
            Activation::Silu => {
                let s = self.op("Sigmoid", &[x], Vec::new());
                self.mul(x, &s)
            }
            Activation::QuickGelu => {
                let y = self.scale(x, 1.702);
                let s = self.op("Sigmoid", &[&y], Vec::new());
                self.mul(x, &s)
            }
            Activation::Gelu => {
                // 0.5 x (1 + erf(x / √2)), torch's exact GELU.
                let y = self.scale(x, std::f64::consts::FRAC_1_SQRT_2);
                let e = self.op("Erf", &[&y], Vec::new());
                let one = self.scalar(1.0);
                let e = self.add(&e, &one);
                let h = self.scale(x, 0.5);
                self.mul(&h, &e)
            }
            Activation::GeluTanh => {
                // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
                let x3 = self.mul(x, x);
                let x3 = self.mul(&x3, x);
                let x3 = self.scale(&x3, 0.044715);
                let inner = self.add(x, &x3);
                let inner = self.scale(&inner, (2.0 / std::f64::consts::PI).sqrt());
                let t = self.op("Tanh", &[&inner], Vec::new());
                let one = self.scalar(1.0);
                let t = self.add(&t, &one);
                let h = self.scale(x, 0.5);
                self.mul(&h, &t)
            }
        }
    }

    pub fn softmax(&mut self, x: &V, axis: i64) -> V {
        self.op("Softmax", &[x], vec![int("axis", axis)])
    }

    pub fn transpose(&mut self, x: &V, perm: &[i64]) -> V {
        self.op("Transpose", &[x], vec![ints("perm", perm)])
    }

    /// Reshape; a 0 copies the input's size on that axis (batch and sequence stay dynamic).
    pub fn reshape(&mut self, x: &V, shape: &[i64]) -> V {
        let s = self.ints(shape);
        self.op("Reshape", &[x, &s], Vec::new())
    }

    pub fn unsqueeze(&mut self, x: &V, axes: &[i64]) -> V {
        let a = self.ints(axes);
        self.op("Unsqueeze", &[x, &a], Vec::new())
    }

    pub fn squeeze(&mut self, x: &V, axes: &[i64]) -> V {
        let a = self.ints(axes);
        self.op("Squeeze", &[x, &a], Vec::new())
    }

    pub fn concat(&mut self, xs: &[&V], axis: i64) -> V {
        self.op("Concat", xs, vec![int("axis", axis)])
    }

    /// `x` with the values along `axis` picked by `indices` (a 0-D index drops the axis).
    pub fn gather(&mut self, x: &V, indices: &V, axis: i64) -> V {
        self.op("Gather", &[x, indices], vec![int("axis", axis)])
    }

    /// Rows of an embedding table.
    pub fn embedding(&mut self, table: &nn::Embedding, ids: &V) -> Result<V> {
        let w = self.weight(&table.ws, false)?;
        Ok(self.gather(&w, ids, 0))
    }

    pub fn sum(&mut self, x: &V, axes: &[i64], keepdims: bool) -> V {
        let a = self.ints(axes);
        self.op(
            "ReduceSum",
            &[x, &a],
            vec![int("keepdims", keepdims as i64)],
        )
    }

    /// ReduceMean (its axes are an attribute until opset 18).
    pub fn mean(&mut self, x: &V, axes: &[i64], keepdims: bool) -> V {
        self.op(
            "ReduceMean",
            &[x],
            vec![ints("axes", axes), int("keepdims", keepdims as i64)],
        )
    }

    pub fn cast_float(&mut self, x: &V) -> V {
        self.op("Cast", &[x], vec![int("to", DataType::Float as i64)])
    }

    pub fn cast_int64(&mut self, x: &V) -> V {
        self.op("Cast", &[x], vec![int("to", DataType::Int64 as i64)])
    }

    /// `xs` stacked along a new axis `axis` (torch's `stack`).
    pub fn stack(&mut self, xs: &[V], axis: i64) -> V {
        let parts: Vec<V> = xs.iter().map(|x| self.unsqueeze(x, &[axis])).collect();
        let refs: Vec<&V> = parts.iter().collect();
        self.concat(&refs, axis)
    }

    /// `[batch, 1, …, 1]` (`rank` entries) for the batch of `x`: what Expand repeats a
    /// constant over the batch with.
    pub fn batch_shape(&mut self, x: &V, rank: usize) -> V {
        let shape = self.op("Shape", &[x], Vec::new());
        let first = self.ints(&[0]);
        let batch = self.gather(&shape, &first, 0);
        let ones = self.ints(&vec![1; rank - 1]);
        self.concat(&[&batch, &ones], 0)
    }

    /// Whether a node reads `v`.
    pub fn uses(&self, v: &V) -> bool {
        self.nodes.iter().any(|n| n.input.contains(&v.0))
    }
}
