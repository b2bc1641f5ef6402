// The CHT → FHIR mapping of the Node.js mediator of medic/cht-interoperability
// (branch openmrs-mediator, mediator/src/mappers/cht.ts: buildFhirPatientFromCht,
// buildFhirEncounterFromCht, buildFhirObservationFromCht; copyIdToNamedIdentifier
// from mediator/src/utils/fhir.ts), re-implemented in plain JavaScript step for step
// (same objects, same members in the same order) so that it runs without its
// TypeScript build. It is a benchmark reference only: see README.md.
'use strict';

const docIdType = { text: 'CHT Document ID' };
const patientIdType = { text: 'CHT Patient ID' };
const visitType = { text: 'Communtiy Health Worker Visit' };
const encounterClass = {
  text: 'HH',
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'HH' }],
};

// The resource's id as an identifier of the given type, unless it has one.
function addIdAsIdentifier(from, to, type) {
  const id = { type: type, value: from.id, use: 'secondary' };
  to.identifier = to.identifier || [];
  if (!to.identifier.some((i) => i.type.text === type.text)) {
    to.identifier.push(id);
  }
  return to;
}

// person document → Patient
function patientFromPerson(doc) {
  const parts = doc.name.split(' ');
  const family = parts.pop() || '';
  const patient = {
    resourceType: 'Patient',
    name: [{ family: family, given: parts }],
    birthDate: doc.date_of_birth,
    id: doc._id,
    identifier: [{ type: patientIdType, value: doc.patient_id, use: 'official' }],
    gender: doc.sex,
    telecom: [{ value: doc.phone }],
  };
  addIdAsIdentifier(patient, patient, docIdType);
  return patient;
}

// encounter payload → Encounter
function encounterFromPayload(p) {
  const encounter = {
    resourceType: 'Encounter',
    id: p.id,
    status: 'unknown',
    type: [visitType],
    class: encounterClass,
    subject: { reference: `Patient/${p.patient_uuid}`, type: 'Patient' },
    period: {
      start: new Date(p.reported_date).toISOString(),
      end: new Date(p.reported_date + 1000 * 60 * 10).toISOString(),
    },
  };
  addIdAsIdentifier(encounter, encounter, docIdType);
  return encounter;
}

const valueMembers = ['valueString', 'valueDateTime', 'valueTime', 'valueBoolean', 'valueInteger', 'valueQuantity'];

// one payload observation → Observation
function observationFromPayload(patientID, encounter, entry) {
  const obs = {
    resourceType: 'Observation',
    subject: { reference: `Patient/${patientID}`, type: 'Patient' },
    encounter: { reference: `Encounter/${encounter.id}`, type: 'Encounter' },
    status: 'final',
    code: { coding: [{ code: entry.code }] },
    effectiveDateTime: encounter.period && encounter.period.start,
    issued: new Date().toISOString(),
  };
  for (const m of valueMembers) {
    if (Object.prototype.hasOwnProperty.call(entry, m)) {
      obs[m] = entry[m];
    }
  }
  if ('valueCode' in entry) {
    obs.valueCodeableConcept = { coding: [{ code: entry.valueCode }] };
  }
  return obs;
}

// payload → the Encounter and its Observations as one transaction Bundle (the
// mediator PUTs the Encounter and POSTs each Observation; the Bundle makes the
// output comparable with the Go converter's).
function bundleFromPayload(p) {
  const enc = encounterFromPayload(p);
  const entry = [{ resource: enc, request: { method: 'PUT', url: `Encounter/${enc.id}` } }];
  for (const o of p.observations) {
    entry.push({ resource: observationFromPayload(p.patient_uuid, enc, o), request: { method: 'POST', url: 'Observation' } });
  }
  return { resourceType: 'Bundle', type: 'transaction', entry: entry };
}

module.exports = { patientFromPerson, bundleFromPayload };
