//! ONNX importer (opsets 11–21, as `torch.onnx.export`, tf2onnx and skl2onnx write them).
//!
//! ONNX activations are NCHW, the IR's are NHWC. Rather than transposing around every op, each
//! imported activation carries a *layout*: the permutation saying which ONNX dimension each IR
//! dimension holds. Spatial ops want NHWC (`[0, 2, 3, 1]`), shape-sensitive ops (Reshape, Flatten,
//! MatMul) want ONNX order; a TRANSPOSE (or a RESHAPE, when only size-1 dims move) is emitted only
//! where the layout an op needs differs from the one its input has. An ONNX Transpose only changes
//! the layout, so tf2onnx's NHWC→NCHW→NHWC pairs cost nothing.
//!
//! Graph inputs and outputs keep their ONNX shape and order (batch fixed to 1), so the converted
//! model takes the same data as the ONNX one: a PyTorch model's `[N, C, H, W]` calibration and test
//! arrays feed it unchanged, and the NHWC conversion is an op inside the model.
//!
//! Constant subgraphs (initializers, `Constant`, shape chains) are folded at import in ONNX layout
//! and turned into IR constants (in the consumer's layout) only where an op takes them.

mod constant;
mod ops;
mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    include!("proto/onnx.rs");
}

use super::ImportOptions;
use crate::graph::{Activation, Data, Graph, Node, Op, Tensor, TensorId};
use anyhow::{anyhow, bail, ensure, Context, Result};
use constant::Const;
use prost::Message;
use proto::{type_proto, GraphProto, NodeProto};
use std::collections::{HashMap, HashSet};

/// What an ONNX value name stands for during import.
#[derive(Clone, Debug)]
enum Value {
    Const(Const),
    Act(Act),
}

/// An activation: its IR tensor, and for each IR dimension the ONNX dimension it holds.
#[derive(Clone, Debug)]
struct Act {
    id: TensorId,
    layout: Vec<usize>,
}

/// Largest graph input accepted, in elements.
const MAX_INPUT_ELEMENTS: usize = 1 << 30;

/// The NHWC layout of an ONNX NCHW tensor.
const NHWC: [usize; 4] = [0, 2, 3, 1];

/// An op the importer does not handle; `import` adds the `--outputs` hint to it.
#[derive(Debug)]
struct Unsupported {
    node: usize,
    message: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unsupported {}

/// Imports an ONNX model into the float graph IR.
pub fn import(bytes: &[u8], options: &ImportOptions) -> Result<Graph> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| anyhow!("not a valid ONNX model ({e})"))?;
    let graph = model
        .graph
        .as_ref()
        .filter(|g| !g.output.is_empty())
        .ok_or_else(|| anyhow!("not a valid ONNX model (no graph with outputs; is this an .onnx file?)"))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain(), "" | "ai.onnx"))
        .map(|o| o.version())
        .ok_or_else(|| anyhow!("not a valid ONNX model (no ai.onnx opset import)"))?;
    ensure!((7..=22).contains(&opset), "ONNX opset {opset} is not supported (opsets 11 to 21 are)");

    let all_outputs: Vec<&str> = graph.output.iter().map(|o| o.name()).collect();
    let wanted: Vec<String> = match &options.outputs {
        Some(names) => {
            for name in names {
                ensure!(
                    all_outputs.contains(&name.as_str()),
                    "the model has no output '{name}' (its outputs: {})",
                    all_outputs.join(", ")
                );
            }
            names.clone()
        }
        None => all_outputs.iter().map(|s| s.to_string()).collect(),
    };
    let needed = needed_nodes(graph, &wanted);
    Importer::new(opset, graph, &needed, &wanted)?.run(graph, &needed, &wanted).map_err(|error| {
        match error.downcast_ref::<Unsupported>() {
            Some(unsupported) if options.outputs.is_none() => {
                let float_outputs: Vec<&str> = graph
                    .output
                    .iter()
                    .filter(|o| tensor_elem_type(o.r#type.as_ref()) == Some(1))
                    .filter(|o| !needed_nodes(graph, &[o.name().to_string()]).contains(&unsupported.node))
                    .map(|o| o.name())
                    .collect();
                if float_outputs.is_empty() {
                    error
                } else {
                    anyhow!(
                        "{unsupported}; to import only the float outputs, pass --outputs {}",
                        float_outputs.join(",")
                    )
                }
            }
            _ => error,
        }
    })
}

/// Indices of the nodes that some wanted output depends on.
fn needed_nodes(graph: &GraphProto, wanted: &[String]) -> HashSet<usize> {
    let mut live: HashSet<&str> = wanted.iter().map(String::as_str).collect();
    let mut needed = HashSet::new();
    for (index, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| live.contains(o.as_str())) {
            needed.insert(index);
            live.extend(node.input.iter().map(String::as_str).filter(|s| !s.is_empty()));
        }
    }
    needed
}

fn tensor_elem_type(ty: Option<&proto::TypeProto>) -> Option<i32> {
    match ty?.value.as_ref()? {
        type_proto::Value::TensorType(t) => Some(t.elem_type()),
        _ => None,
    }
}

/// Import state: the IR being built and what every ONNX value name maps to.
struct Importer {
    opset: i64,
    graph: Graph,
    values: HashMap<String, Value>,
    /// How many kept nodes (and graph outputs) read each ONNX value: fusing into a producer is only
    /// safe when the fused value has no other reader.
    uses: HashMap<String, usize>,
    /// Layout conversions already emitted: (tensor, wanted layout) → converted tensor.
    converted: HashMap<(TensorId, Vec<usize>), TensorId>,
    /// IR node that produced each activation tensor.
    producer: HashMap<TensorId, usize>,
    /// ONNX values that are an NHWC map flattened in NCHW order to `[N, C*H*W]`: the NHWC tensor
    /// and its `[C, H, W]`. A fully connected layer reading one takes the NHWC tensor directly
    /// with its weight columns permuted, so the TRANSPOSE back to NCHW is not needed.
    flattened_nchw: HashMap<String, (TensorId, [usize; 3])>,
}

impl Importer {
    fn new(opset: i64, graph: &GraphProto, needed: &HashSet<usize>, wanted: &[String]) -> Result<Self> {
        let mut importer = Importer {
            opset,
            graph: Graph::default(),
            values: HashMap::new(),
            uses: HashMap::new(),
            converted: HashMap::new(),
            producer: HashMap::new(),
            flattened_nchw: HashMap::new(),
        };
        for (index, node) in graph.node.iter().enumerate() {
            if needed.contains(&index) {
                for input in node.input.iter().filter(|s| !s.is_empty()) {
                    *importer.uses.entry(input.clone()).or_default() += 1;
                }
            }
        }
        for name in wanted {
            *importer.uses.entry(name.clone()).or_default() += 1;
        }
        for tensor in &graph.initializer {
            let value = constant::from_proto(tensor).with_context(|| format!("initializer '{}'", tensor.name()))?;
            importer.values.insert(tensor.name().to_string(), Value::Const(value));
        }
        Ok(importer)
    }

    fn run(mut self, graph: &GraphProto, needed: &HashSet<usize>, wanted: &[String]) -> Result<Graph> {
        self.add_inputs(graph)?;
        for (index, node) in graph.node.iter().enumerate() {
            if !needed.contains(&index) {
                continue;
            }
            let described = format!("node '{}' ({})", node.name(), node.op_type());
            self.node(node).map_err(|error| match error.downcast::<Unsupported>() {
                Ok(unsupported) => {
                    anyhow!(Unsupported { node: index, message: format!("{described}: {}", unsupported.message) })
                }
                Err(error) => error.context(described),
            })?;
        }
        for name in wanted {
            self.add_output(name)?;
        }
        ops::simplify(&mut self.graph);
        check_finite(&self.graph)?;
        Ok(self.graph)
    }

    /// Graph inputs (those not given by an initializer), in ONNX's shape and order; dynamic
    /// dimensions (batch) become 1.
    fn add_inputs(&mut self, graph: &GraphProto) -> Result<()> {
        for input in &graph.input {
            let name = input.name();
            if self.values.contains_key(name) {
                continue;
            }
            let Some(type_proto::Value::TensorType(ty)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
                bail!("graph input '{name}' is not a tensor");
            };
            ensure!(
                ty.elem_type() == 1,
                "graph input '{name}' has element type {} (only float32 inputs are supported)",
                ty.elem_type()
            );
            let dims: Vec<usize> = ty
                .shape
                .as_ref()
                .with_context(|| format!("graph input '{name}' has no shape"))?
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(proto::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => v as usize,
                    _ => 1,
                })
                .collect();
            let elements = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            ensure!(
                elements.is_some_and(|n| n <= MAX_INPUT_ELEMENTS),
                "graph input '{name}' has shape {dims:?}, too large"
            );
            let layout = (0..dims.len()).collect();
            let id = self.graph.add_tensor(Tensor::activation(name, dims));
            self.graph.inputs.push(id);
            self.values.insert(name.to_string(), Value::Act(Act { id, layout }));
        }
        Ok(())
    }

    /// Makes a graph output, in ONNX order under the ONNX output name.
    fn add_output(&mut self, name: &str) -> Result<()> {
        let act = match self.values.get(name) {
            Some(Value::Act(act)) => act.clone(),
            Some(Value::Const(_)) => bail!("output '{name}' is a constant; there is nothing to run"),
            None => bail!("output '{name}' is not produced by any node"),
        };
        let mut id = self.plain(&act)?;
        if self.graph.inputs.contains(&id) || self.graph.outputs.contains(&id) {
            let shape = self.graph.tensors[id].shape.clone();
            let shape_param = self.i32_const(format!("{name}/copy_shape"), &shape)?;
            id = self.emit(name, Op::Reshape, vec![Some(id), Some(shape_param)], name, shape);
        }
        self.graph.tensors[id].name = name.to_string();
        self.graph.outputs.push(id);
        Ok(())
    }

    /// The value named `name`, which some earlier node or initializer must have produced.
    fn value(&self, name: &str) -> Result<&Value> {
        self.values.get(name).ok_or_else(|| anyhow!("input '{name}' is not produced by any earlier node"))
    }

    /// Input `index` of `node`, or `None` when absent or given as "".
    fn input<'a>(&'a self, node: &NodeProto, index: usize) -> Result<Option<&'a Value>> {
        match node.input.get(index).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self.value(name).map(Some),
        }
    }

    fn act_input(&self, node: &NodeProto, index: usize) -> Result<Act> {
        match self.input(node, index)? {
            Some(Value::Act(act)) => Ok(act.clone()),
            Some(Value::Const(_)) => bail!(unsupported("input {index} is a constant where an activation is expected")),
            None => bail!("input {index} is missing"),
        }
    }

    fn const_input(&self, node: &NodeProto, index: usize, what: &str) -> Result<Option<Const>> {
        match self.input(node, index)? {
            Some(Value::Const(c)) => Ok(Some(c.clone())),
            Some(Value::Act(_)) => bail!(unsupported(&format!("{what} (input {index}) must be a constant"))),
            None => Ok(None),
        }
    }

    /// ONNX dims of an activation.
    fn onnx_dims(&self, act: &Act) -> Vec<usize> {
        let shape = &self.graph.tensors[act.id].shape;
        let mut dims = vec![0; shape.len()];
        for (ir, &onnx) in act.layout.iter().enumerate() {
            dims[onnx] = shape[ir];
        }
        dims
    }

    /// Binds an ONNX output name.
    fn set(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_string(), value);
    }

    /// Whether the ONNX value has exactly one reader and is not a graph output (so may be fused away).
    fn single_use(&self, name: &str) -> bool {
        self.uses.get(name).copied() == Some(1)
    }

    /// Adds a node with one new activation output and returns that output.
    fn emit(
        &mut self,
        node_name: &str,
        op: Op,
        inputs: Vec<Option<TensorId>>,
        out: &str,
        shape: Vec<usize>,
    ) -> TensorId {
        let id = self.graph.add_tensor(Tensor::activation(out, shape));
        self.producer.insert(id, self.graph.nodes.len());
        self.graph.add_node(node_name, op, inputs, vec![id]);
        id
    }

    fn f32_const(&mut self, name: String, shape: Vec<usize>, values: Vec<f32>) -> TensorId {
        self.graph.add_tensor(Tensor::constant(name, shape, Data::F32(values)))
    }

    fn i32_const(&mut self, name: String, values: &[usize]) -> Result<TensorId> {
        let ints = values.iter().map(|&v| i32::try_from(v)).collect::<Result<Vec<_>, _>>()?;
        Ok(self.graph.add_tensor(Tensor::constant(name, vec![ints.len()], Data::I32(ints))))
    }

    /// The tensor holding `act` in layout `want`, emitting (once) the TRANSPOSE, or a RESHAPE when
    /// only size-1 dimensions move, that gets it there.
    fn in_layout(&mut self, act: &Act, want: &[usize]) -> Result<TensorId> {
        if act.layout == want {
            return Ok(act.id);
        }
        if let Some(&id) = self.converted.get(&(act.id, want.to_vec())) {
            return Ok(id);
        }
        let shape = self.graph.tensors[act.id].shape.clone();
        let perm: Vec<usize> = want
            .iter()
            .map(|w| act.layout.iter().position(|l| l == w).context("layout mismatch"))
            .collect::<Result<_>>()?;
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let moved: Vec<usize> = perm.iter().copied().filter(|&p| shape[p] != 1).collect();
        let name = format!("{}/{}", self.graph.tensors[act.id].name, layout_name(want));
        let id = if moved.windows(2).all(|w| w[0] < w[1]) {
            let shape_param = self.i32_const(format!("{name}/shape"), &out_shape)?;
            self.emit(&name, Op::Reshape, vec![Some(act.id), Some(shape_param)], &name, out_shape)
        } else {
            let perm_param = self.i32_const(format!("{name}/perm"), &perm)?;
            self.emit(&name, Op::Transpose, vec![Some(act.id), Some(perm_param)], &name, out_shape)
        };
        self.converted.insert((act.id, want.to_vec()), id);
        Ok(id)
    }

    /// `act` in ONNX order.
    fn plain(&mut self, act: &Act) -> Result<TensorId> {
        let plain: Vec<usize> = (0..act.layout.len()).collect();
        self.in_layout(act, &plain)
    }

    /// An ONNX constant as an IR float tensor for an op whose other input is `act`: broadcast to
    /// the activation's rank, put in its layout, leading 1s dropped.
    fn const_for(&mut self, name: &str, value: &Const, act: &Act) -> Result<TensorId> {
        let rank = act.layout.len();
        ensure!(value.dims.len() <= rank, "constant '{name}' has a higher rank than the activation it meets");
        let mut dims = vec![1; rank - value.dims.len()];
        dims.extend(&value.dims);
        let arranged = value.reshaped(dims)?.transposed(&act.layout);
        let mut shape = arranged.dims.clone();
        while shape.len() > 1 && shape[0] == 1 {
            shape.remove(0);
        }
        Ok(self.f32_const(name.to_string(), shape, arranged.to_f32()))
    }

    /// The IR node that produced `id` if it can absorb a following op: it is the value's only
    /// reader, and it has no fused activation yet.
    fn fusable_producer(&self, value_name: &str, id: TensorId) -> Option<usize> {
        let index = *self.producer.get(&id)?;
        let node: &Node = &self.graph.nodes[index];
        (self.single_use(value_name) && node.outputs == [id] && fused_activation(&node.op) == Some(Activation::None))
            .then_some(index)
    }

    /// Fuses `activation` into the producer of input 0 if possible; returns whether it did.
    fn try_fuse_activation(&mut self, node: &NodeProto, activation: Activation) -> Result<bool> {
        let act = self.act_input(node, 0)?;
        let Some(index) = self.fusable_producer(&node.input[0], act.id) else {
            return Ok(false);
        };
        set_fused_activation(&mut self.graph.nodes[index].op, activation);
        self.graph.tensors[act.id].name = node.output[0].clone();
        self.set(&node.output[0], Value::Act(act));
        Ok(true)
    }
}

/// A short suffix naming a layout in generated tensor names.
fn layout_name(layout: &[usize]) -> String {
    if layout == NHWC {
        "nhwc".to_string()
    } else if layout.iter().enumerate().all(|(i, &d)| i == d) {
        "onnx_order".to_string()
    } else {
        format!("perm{layout:?}")
    }
}

/// The fused activation slot of an op, if it has one.
fn fused_activation(op: &Op) -> Option<Activation> {
    match op {
        Op::FullyConnected { activation, .. }
        | Op::Conv2d { activation, .. }
        | Op::DepthwiseConv2d { activation, .. }
        | Op::MaxPool2d { activation, .. }
        | Op::AveragePool2d { activation, .. }
        | Op::Add { activation }
        | Op::Sub { activation }
        | Op::Mul { activation }
        | Op::Concatenation { activation, .. } => Some(*activation),
        _ => None,
    }
}

fn set_fused_activation(op: &mut Op, value: Activation) {
    if let Op::FullyConnected { activation, .. }
    | Op::Conv2d { activation, .. }
    | Op::DepthwiseConv2d { activation, .. }
    | Op::MaxPool2d { activation, .. }
    | Op::AveragePool2d { activation, .. }
    | Op::Add { activation }
    | Op::Sub { activation }
    | Op::Mul { activation }
    | Op::Concatenation { activation, .. } = op
    {
        *activation = value;
    }
}

/// An [`Unsupported`] error (the node index is filled in by the caller).
fn unsupported(message: &str) -> Unsupported {
    Unsupported { node: usize::MAX, message: message.to_string() }
}

/// Refuses NaN or infinite weights, naming the tensor.
fn check_finite(graph: &Graph) -> Result<()> {
    for tensor in &graph.tensors {
        if let Some(Data::F32(values)) = &tensor.data {
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                bail!("constant '{}' contains {bad} (weights must be finite)", tensor.name);
            }
        }
    }
    Ok(())
}
